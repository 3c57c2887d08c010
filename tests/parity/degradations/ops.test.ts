/**
 * Every degradation op against the golden reference fixtures in tests/fixtures/reference/ (BasicSR / torch numbers), within
 * each case's recorded tolerance. Runs on the cpu backend (exactness) and again on wasm for
 * the tensor ops (the backend the pipeline runs on).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend, type BackendName } from '../../../framework/engine/backend.js';
import { loadReference, f32, f64, nchwToNhwc, maxAbsDiff, type RefCase } from './reference.js';
import {
  gaussianKernel, generalizedGaussianKernel, plateauKernel, sincKernel,
} from '../../../registry/degradations/kernels/kernels.js';
import { filter2d } from '../../../registry/degradations/common/filter2d.js';
import { resize, resizeCv2Area, type ResizeMode } from '../../../registry/degradations/resize/resize.js';
import { gaussianNoise, poissonNoise, addNoise, quantizeForPoisson, grayOf } from '../../../registry/degradations/noise/noise.js';
import { diffJpeg, DIFFJPEG_Y_TABLE, DIFFJPEG_C_TABLE } from '../../../registry/degradations/jpeg/diffjpeg.js';
import { diffJpegTensor } from '../../../registry/degradations/jpeg/diffjpeg-tensor.js';
import { usmSharpParts, usmKernel1d } from '../../../registry/degradations/sharpen/usm.js';

const kernels = loadReference('kernels.json');
const filters = loadReference('filter2d.json');
const resizes = loadReference('resize.json');
const noises = loadReference('noise.json');
const jpegs = loadReference('diffjpeg.json');
const usms = loadReference('usm_sharp.json');

function nhwcInput(c: RefCase, key = 'input'): tf.Tensor4D {
  const [n, ch, h, w] = c[key].shape as number[];
  return tf.tensor4d(nchwToNhwc(f32(c[key]), n, ch, h, w), [n, h, w, ch]);
}
function nhwcExpected(a: RefCase[string]): Float32Array {
  const [n, ch, h, w] = a.shape as number[];
  return nchwToNhwc(f32(a), n, ch, h, w);
}

describe('kernels (float64, BasicSR generators)', () => {
  for (const c of kernels.cases) {
    it(c.name, () => {
      const p = c.params;
      let k;
      if (c.function === 'bivariate_Gaussian') k = gaussianKernel(p.kernel_size, p.sig_x, p.sig_y, p.theta, p.isotropic);
      else if (c.function === 'bivariate_generalized_Gaussian') k = generalizedGaussianKernel(p.kernel_size, p.sig_x, p.sig_y, p.theta, p.beta, p.isotropic);
      else if (c.function === 'bivariate_plateau') k = plateauKernel(p.kernel_size, p.sig_x, p.sig_y, p.theta, p.beta, p.isotropic);
      else if (c.function === 'circular_lowpass_kernel') k = sincKernel(p.cutoff, p.kernel_size, p.pad_to);
      else throw new Error(`unknown function ${c.function}`);
      const exp = f64(c.expected.kernel);
      assert.equal(k.size * k.size, exp.length);
      const d = maxAbsDiff(k.data, exp);
      assert.ok(d <= c.tolerance.abs, `${c.name}: max abs diff ${d} > ${c.tolerance.abs}`);
    });
  }
});

// native TensorFlow too when `npm test` built it (scripts/run-tests.mjs sets RASS_NATIVE_AVAILABLE):
// the pipeline runs there in training, and filter2d picks a different form on it
for (const backend of ['cpu', 'wasm', ...(process.env.RASS_NATIVE_AVAILABLE === '1' ? ['tensorflow'] : [])] as BackendName[]) {
  describe(`tensor ops on ${backend}`, () => {
    before(async () => useBackend(backend));

    describe('filter2d (reflect padding, cross-correlation)', () => {
      for (const c of filters.cases) {
        it(c.name, () => {
          const x = nhwcInput(c);
          const [bk, k] = c.kernel.shape as number[];
          const kd = f32(c.kernel);
          const list = Array.from({ length: bk }, (_, i) => ({ size: k, data: kd.subarray(i * k * k, (i + 1) * k * k) }));
          const y = filter2d(x, bk === 1 ? list[0] : list);
          const d = maxAbsDiff(y.dataSync(), nhwcExpected(c.expected.output));
          tf.dispose([x, y]);
          assert.ok(d <= c.tolerance.abs, `${c.name}: ${d}`);
        });
      }
    });

    describe('resize (torch interpolate semantics)', () => {
      for (const c of resizes.cases) {
        it(c.name, () => {
          const x = nhwcInput(c);
          for (const mode of ['bilinear', 'bicubic', 'area'] as ResizeMode[]) {
            if (c.params.scale_factor !== undefined) {
              const tol = c.tolerance.abs;
              const y1 = resize(x, { scaleFactor: c.params.scale_factor }, mode);
              const d1 = maxAbsDiff(y1.dataSync(), nhwcExpected(c.expected[`torch_${mode}_scale_factor`]));
              const y2 = resize(x, { size: c.params.output_size_hw }, mode);
              const d2 = maxAbsDiff(y2.dataSync(), nhwcExpected(c.expected[`torch_${mode}_same_size_via_size`]));
              tf.dispose([y1, y2]);
              assert.ok(d1 <= tol && d2 <= tol, `${c.name} ${mode}: scale_factor ${d1}, size ${d2}`);
            } else {
              const y = resize(x, { size: c.params.output_size_hw }, mode);
              const d = maxAbsDiff(y.dataSync(), nhwcExpected(c.expected[`torch_${mode}`]));
              // OpenCV float32: INTER_LINEAR / INTER_CUBIC equal the torch modes; INTER_AREA has its own op
              const cvKey = { bilinear: 'INTER_LINEAR', bicubic: 'INTER_CUBIC', area: 'INTER_AREA' }[mode];
              const yc = mode === 'area' ? resizeCv2Area(x, c.params.output_size_hw) : y;
              const dc = maxAbsDiff(yc.dataSync(), f32(c.expected[`cv2_${cvKey}_float32`]));
              tf.dispose([y, yc]);
              assert.ok(d <= c.tolerance.torch_float32, `${c.name} ${mode}: ${d}`);
              assert.ok(dc <= c.tolerance.cv2_float32, `${c.name} cv2 ${cvKey}: ${dc}`);
            }
          }
          x.dispose();
        });
      }
    });

    describe('DiffJPEG', () => {
      it('uses the transposed Annex K tables', () => {
        const t = jpegs.tables as Record<string, { data: number[] }>;
        assert.deepEqual([...DIFFJPEG_Y_TABLE], t.y_table_as_used.data.map(Number));
        assert.deepEqual([...DIFFJPEG_C_TABLE], t.c_table_as_used.data.map(Number));
      });
      for (const c of jpegs.cases) {
        for (const q of c.params.qualities as number[]) {
          for (const diff of [false, true]) {
            for (const [impl, fn] of [['loops', diffJpeg], ['tensor ops', diffJpegTensor]] as const) it(`${c.name} q${q} differentiable=${diff} (${impl})`, () => {
              const x = nhwcInput(c);
              const y = fn(x, q, diff);
              const got = y.dataSync();
              const exp = nhwcExpected(c.expected[`q${q}_differentiable_${diff}`]);
              tf.dispose([x, y]);
              const tol = c.tolerance['diffjpeg_abs_[0,1]'];
              let bad = 0;
              for (let i = 0; i < got.length; i++) if (Math.abs(got[i] - exp[i]) > tol) bad++;
              assert.equal(bad, 0, `${c.name} q${q}: ${bad} pixels off by more than ${tol} (max ${maxAbsDiff(got, exp)})`);
            });
          }
        }
      }
    });

    describe('USM sharpening', () => {
      for (const c of usms.cases) {
        it(c.name, () => {
          const k = usmKernel1d(c.params.radius_arg, c.params.sigma_arg);
          assert.ok(maxAbsDiff(k, f64(c.kernel_1d)) < 1e-7, 'kernel');
          const x = nhwcInput(c);
          const r = usmSharpParts(x, { radius: c.params.radius_arg, sigma: c.params.sigma_arg, weight: c.params.weight, threshold: c.params.threshold });
          const tol = c.tolerance.abs;
          const d = {
            blur: maxAbsDiff(r.blur.dataSync(), nhwcExpected(c.expected.blur)),
            mask: maxAbsDiff(r.mask.dataSync(), nhwcExpected(c.expected.mask)),
            soft: maxAbsDiff(r.softMask.dataSync(), nhwcExpected(c.expected.soft_mask)),
            out: maxAbsDiff(r.output.dataSync(), nhwcExpected(c.expected.output)),
          };
          tf.dispose([x, r.blur, r.mask, r.softMask, r.output]);
          assert.ok(d.mask === 0 && d.blur <= tol && d.soft <= tol && d.out <= tol, `${c.name}: ${JSON.stringify(d)}`);
        });
      }
    });
  });
}

describe('noise from injected draws', () => {
  const check = (name: string, got: ArrayLike<number>, exp: ArrayLike<number>, tol: number) => {
    const d = maxAbsDiff(got, exp);
    assert.ok(d <= tol, `${name}: ${d} > ${tol}`);
  };
  for (const c of noises.cases) {
    it(c.name, () => {
      const tol = c.tolerance.abs;
      if (c.name === 'gaussian_color_numpy' || c.name === 'gaussian_gray_numpy') {
        const img = f32(c.input);
        const [h, w, ch] = c.input.shape;
        const gray = c.params.gray_noise;
        const noise = gaussianNoise(h * w, ch, c.params.sigma, gray, f32(c.injected.standard_normal_draws));
        if (gray) {
          const single = Float32Array.from({ length: h * w }, (_, i) => noise[i * ch]);
          check('noise', single, f32(c.expected.noise_single_channel), tol);
          check('out', addNoise(img, noise, true, false), f32(c.expected.out), tol);
        } else {
          check('noise', noise, f32(c.expected.noise), tol);
          for (const [key, v] of Object.entries(c.params.variants as Record<string, { clip: boolean; rounds: boolean }>)) {
            check(key, addNoise(img, noise, v.clip, v.rounds), f32(c.expected[`out_${key}`]), tol);
          }
        }
      } else if (c.name === 'gaussian_batch_torch') {
        const [n, ch, h, w] = c.input.shape;
        const img = nchwToNhwc(f32(c.input), n, ch, h, w);
        const grayDraws = f32(c.injected.gray_draws);
        const colour = nchwToNhwc(f32(c.injected.color_draws), n, ch, h, w);
        const out = new Float32Array(img.length);
        const per = h * w * ch;
        for (let b = 0; b < n; b++) {
          const gray = c.params.gray_noise[b] > 0;
          const noise = gaussianNoise(h * w, ch, c.params.sigma[b], gray, gray ? grayDraws : colour.subarray(b * per, (b + 1) * per));
          out.set(addNoise(img.subarray(b * per, (b + 1) * per), noise, true, true), b * per);
        }
        check('out', out, nhwcExpected(c.expected.out), tol);
      } else if (c.name.startsWith('poisson') && c.name.includes('numpy')) {
        const img = f32(c.input);
        const [h, w, ch] = c.input.shape;
        const gray = c.params.gray_noise;
        const draws = f32(c.injected.poisson_draws);
        if (gray) {
          const g = grayOf(img, h * w, ch, 'cv2');
          check('gray', g, f32(c.intermediate.gray), 1e-7);
          const q = quantizeForPoisson(g);
          assert.equal(q.count, c.intermediate.unique_count);
          assert.equal(q.vals, c.intermediate.vals);
        } else {
          const q = quantizeForPoisson(img);
          assert.equal(q.count, c.intermediate.unique_count);
          assert.equal(q.vals, c.intermediate.vals);
          check('rounded', q.rounded, f32(c.intermediate.img_rounded), 0);
        }
        let lamSeen: Float32Array | null = null;
        const noise = poissonNoise(img, h * w, ch, c.params.scale, gray, (lam) => {
          lamSeen = lam;
          return draws;
        }, 'cv2');
        if (c.intermediate.lam) check('lam', lamSeen!, f32(c.intermediate.lam), 0);
        if (c.expected.noise) check('noise', noise, f32(c.expected.noise), tol);
        check('out', addNoise(img, noise, c.params.clip, c.params.rounds), f32(c.expected.out), tol);
      } else if (c.name === 'poisson_batch_torch') {
        const [n, ch, h, w] = c.input.shape;
        const img = nchwToNhwc(f32(c.input), n, ch, h, w);
        const grayDraws = f32(c.injected.gray_poisson_draws);
        const colour = nchwToNhwc(f32(c.injected.color_poisson_draws), n, ch, h, w);
        const per = h * w * ch;
        const out = new Float32Array(img.length);
        for (let b = 0; b < n; b++) {
          const gray = c.params.gray_noise[b] > 0;
          const sample = img.subarray(b * per, (b + 1) * per);
          const draws = gray ? grayDraws.subarray(b * h * w, (b + 1) * h * w) : colour.subarray(b * per, (b + 1) * per);
          const noise = poissonNoise(sample, h * w, ch, c.params.scale[b], gray, () => draws, 'torch');
          out.set(addNoise(sample, noise, true, false), b * per);
        }
        check('out', out, nhwcExpected(c.expected.out), tol);
      } else {
        throw new Error(`unhandled case ${c.name}`);
      }
    });
  }
});
