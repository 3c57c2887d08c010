/** Op-level properties the fixtures do not cover: samplers, padding fallback, gates, records. */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import { plugins } from '../../../registry/degradations/index.js';
import { buildDegradation } from '../../../registry/degradations/common/build.js';
import { sampleKernelParams, makeKernel, gaussianKernel, besselJ1, type KernelType } from '../../../registry/degradations/kernels/kernels.js';
import { filter2d, filterSeparable } from '../../../registry/degradations/common/filter2d.js';
import { quantizeForPoisson } from '../../../registry/degradations/noise/noise.js';
import { roundHalfEven } from '../../../framework/engine/round-half-even.js';
import { resize } from '../../../registry/degradations/resize/resize.js';
import { resizeReference, RESIZE_CASES } from './resize-reference.js';

const build = (node: unknown) => buildDegradation(node as never, { plugins });
const KOPTS = {
  kernelRange: [7, 9, 11, 13, 15, 17, 19, 21], kernelList: ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'] as KernelType[],
  kernelProb: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sigmaX: [0.2, 3], sigmaY: [0.2, 3], rotation: [-Math.PI, Math.PI],
  betaGaussian: [0.5, 4], betaPlateau: [1, 2], sincProb: 0.1, padTo: 21,
};

/** Direct (slow, float64) reflect-101 cross-correlation: the definition filter2d must implement. */
function directFilter(img: Float32Array, h: number, w: number, c: number, k: Float64Array | Float32Array, ks: number): Float64Array {
  const refl = (i: number, n: number) => {
    if (n === 1) return 0;
    const per = 2 * (n - 1);
    let m = ((i % per) + per) % per;
    if (m > n - 1) m = per - m;
    return m;
  };
  const p = (ks - 1) / 2;
  const out = new Float64Array(h * w * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let dy = 0; dy < ks; dy++) for (let dx = 0; dx < ks; dx++) s += k[dy * ks + dx] * img[(refl(y + dy - p, h) * w + refl(x + dx - p, w)) * c + ch];
    out[(y * w + x) * c + ch] = s;
  }
  return out;
}

describe('degradation ops (wasm)', () => {
  before(async () => useBackend('wasm'));

  it('kernel sampler follows kernel_prob and sinc_prob, kernels sum to 1', () => {
    const r = Rng.derive(1, 'kernels');
    const counts: Record<string, number> = {};
    const N = 4000;
    for (let i = 0; i < N; i++) {
      const p = sampleKernelParams(r, KOPTS);
      counts[p.kind] = (counts[p.kind] ?? 0) + 1;
      if (i < 50) {
        const k = makeKernel(p);
        assert.equal(k.size, 21);
        assert.ok(Math.abs(k.data.reduce((a, b) => a + b, 0) - 1) < 1e-9);
      }
    }
    // sinc ~10%, iso ~ 0.9 * 0.45; 4 sigma binomial bounds
    const near = (kind: string, p: number) => {
      const sd = Math.sqrt(N * p * (1 - p));
      assert.ok(Math.abs((counts[kind] ?? 0) - N * p) < 4 * sd, `${kind}: ${counts[kind]} vs ${N * p}`);
    };
    near('sinc', 0.1);
    near('iso', 0.9 * 0.45);
    near('aniso', 0.9 * 0.25);
    near('plateau_iso', 0.9 * 0.12);
  });

  it('Bessel J1 matches known values', () => {
    // J1(1) and J1(10) (Abramowitz & Stegun tables)
    assert.ok(Math.abs(besselJ1(1) - 0.44005058574493355) < 1e-15);
    assert.ok(Math.abs(besselJ1(10) - 0.04347274616886144) < 1e-15);
  });

  it('filter2d equals direct reflect-101 cross-correlation, also when the kernel is larger than the image', () => {
    const r = Rng.derive(2, 'img');
    for (const [h, w, ks] of [[20, 17, 7], [6, 9, 21], [16, 16, 5]] as const) {
      const img = r.fillUniform(new Float32Array(h * w * 3)) as Float32Array;
      const k = new Float64Array(ks * ks).map(() => r.uniform(-0.2, 1));
      const got = filter2d(tf.tensor4d(img, [1, h, w, 3]), { size: ks, data: Float32Array.from(k) });
      const exp = directFilter(img, h, w, 3, Float32Array.from(k), ks);
      const d = got.dataSync();
      got.dispose();
      let m = 0;
      for (let i = 0; i < d.length; i++) m = Math.max(m, Math.abs(d[i] - exp[i]));
      assert.ok(m < 1e-4, `${h}x${w} k${ks}: ${m}`);
    }
  });

  it('separable filtering equals the outer-product kernel', () => {
    const g = gaussianKernel(9, 1.5, 1.5, 0, true);
    const g1 = new Float32Array(9).map((_, i) => Math.sqrt(g.data[i * 9 + i]) * Math.sign(g.data[i * 9 + i]));
    const x = tf.tensor4d(Rng.derive(3, 'x').fillUniform(new Float32Array(24 * 20 * 3)) as Float32Array, [1, 24, 20, 3]);
    const a = filter2d(x, g);
    const b = filterSeparable(x, g1);
    const d = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
    tf.dispose([x, a, b]);
    assert.ok(d < 1e-6, `${d}`);
  });

  it('round half to even like numpy/torch', () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, -2, 2, 3]);
    const q = quantizeForPoisson(Float32Array.from([0, 1, 0.5, 0.5, 1 / 255]));
    assert.equal(q.count, 4);
    assert.equal(q.vals, 4);
  });

  it('resize: size vs scale_factor forms and area on identity', () => {
    const x = tf.tensor4d(Rng.derive(4, 'r').fillUniform(new Float32Array(12 * 12 * 3)) as Float32Array, [1, 12, 12, 3]);
    for (const mode of ['area', 'bilinear', 'bicubic'] as const) {
      const same = resize(x, { size: [12, 12] }, mode);
      assert.deepEqual(same.dataSync(), x.dataSync(), `${mode} identity`);
      same.dispose();
    }
    const up = resize(x, { scaleFactor: 1.5 }, 'bilinear');
    assert.deepEqual(up.shape, [1, 18, 18, 3]);
    tf.dispose([x, up]);
  });

  it('jpeg-sharp op: integer quality per sample, recorded, deterministic', async () => {
    const d = await build({ type: 'degradation/jpeg-sharp', quality_range: [40, 60] });
    const x = tf.tensor4d(Rng.derive(5, 'j').fillUniform(new Float32Array(2 * 16 * 16 * 3)) as Float32Array, [2, 16, 16, 3]);
    const rec = [{}, {}] as Record<string, unknown>[];
    const rngs = () => [Rng.derive(9, 'degradation', 0), Rng.derive(9, 'degradation', 1)];
    const a = await d.apply(x, { rng: rngs(), record: rec });
    const b = await d.apply(x, { rng: rngs() });
    assert.deepEqual(a.dataSync(), b.dataSync());
    for (const r of rec) {
      const q = (r['jpeg-sharp'] as { quality: number }).quality;
      assert.ok(Number.isInteger(q) && q >= 40 && q <= 60);
    }
    for (const v of a.dataSync()) assert.ok(Math.abs(v * 255 - Math.round(v * 255)) < 1e-4);
    tf.dispose([x, a, b]);
  });

  it('per-sample kernels in one batch equal filtering each sample alone', async () => {
    const d = await build({ type: 'degradation/blur' });
    const x = tf.tensor4d(Rng.derive(6, 'b').fillUniform(new Float32Array(3 * 24 * 24 * 3)) as Float32Array, [3, 24, 24, 3]);
    const all = await d.apply(x, { rng: [0, 1, 2].map((i) => Rng.derive(1, 'degradation', i)) });
    const one = tf.slice(x, [2, 0, 0, 0], [1, -1, -1, -1]);
    const alone = await d.apply(one, { rng: [Rng.derive(1, 'degradation', 2)] });
    assert.deepEqual(alone.dataSync(), all.dataSync().slice(2 * 24 * 24 * 3));
    tf.dispose([x, all, one, alone]);
  });
});

describe('DiffJPEG tensor implementation', () => {
  // (useBackend registers the gradients; the values are checked against torch in diffjpeg-grad.test.ts)
  it('passes gradients with differentiable rounding', async () => {
    await useBackend('cpu');
    const { diffJpegTensor } = await import('../../../registry/degradations/jpeg/diffjpeg-tensor.js');
    const x = tf.tensor4d(Rng.derive(7, 'g').fillUniform(new Float32Array(16 * 16 * 3)) as Float32Array, [1, 16, 16, 3]);
    const g = tf.grad((a: tf.Tensor) => tf.sum(diffJpegTensor(a as tf.Tensor4D, 50, true)))(x);
    const m = tf.mean(tf.abs(g)).dataSync()[0];
    tf.dispose([x, g]);
    assert.ok(Number.isFinite(m) && m > 0.1, `mean |grad| ${m}`);
  });

  it('DiffJPEG split at a 16-row boundary across two threads codes every image exactly as a whole', async () => {
    const { diffJpegImage, diffJpegImageSplit, jpegHelperState } = await import('../../../registry/degradations/jpeg/diffjpeg.js');
    const r = Rng.derive(9, 'jpeg-split');
    // sizes with an even and an odd number of macroblock rows, a partial last row, odd widths
    for (const [h, w, q, diff] of [[64, 48, 30, false], [37, 29, 75, false], [17, 40, 10, true], [80, 16, 95, true]] as const) {
      const img = r.fillUniform(new Float32Array(h * w * 3)) as Float32Array;
      const whole = diffJpegImage(img, h, w, q, diff);
      const split = diffJpegImageSplit(img, h, w, q, diff, 2);
      assert.equal(jpegHelperState(), 'running', 'the helper thread coded the lower half');
      assert.deepEqual(Array.from(split), Array.from(whole), `${h}x${w} q${q}`);
      assert.deepEqual(Array.from(diffJpegImageSplit(img, h, w, q, diff, 1)), Array.from(whole), `${h}x${w} q${q}, one thread`);
    }
  });

  it('the diffjpeg plugin gives the same result with either implementation', async () => {
    await useBackend('wasm');
    const a = await build({ type: 'degradation/diffjpeg', implementation: 'loops' });
    const b = await build({ type: 'degradation/diffjpeg', implementation: 'tensor' });
    const x = tf.tensor4d(Rng.derive(8, 'j').fillUniform(new Float32Array(24 * 40 * 3)) as Float32Array, [1, 24, 40, 3]);
    const ya = await a.apply(x, { rng: [Rng.derive(1, 'degradation', 3)] });
    const yb = await b.apply(x, { rng: [Rng.derive(1, 'degradation', 3)] });
    const d = tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0];
    tf.dispose([x, ya, yb]);
    assert.ok(d < 2e-4, `${d}`);
  });
});

describe('Poisson draws', () => {
  it('have mean and variance lambda for small and large rates', async () => {
    const { poissonDraws } = await import('../../../registry/degradations/noise/noise.js');
    for (const lam of [0.5, 4, 37, 2000]) {
      const n = 20000;
      const d = poissonDraws(Rng.derive(4, 'poisson', lam), new Float32Array(n).fill(lam));
      let m = 0;
      for (const v of d) m += v;
      m /= n;
      let v2 = 0;
      for (const v of d) v2 += (v - m) ** 2;
      v2 /= n - 1;
      assert.ok(d.every((v) => Number.isInteger(v) && v >= 0));
      assert.ok(Math.abs(m - lam) < 5 * Math.sqrt(lam / n), `lambda ${lam}: mean ${m}`);
      assert.ok(Math.abs(v2 / lam - 1) < 0.06, `lambda ${lam}: variance ${v2}`);
    }
  });
  it('are the same whether a rate\'s constants were cached or computed fresh (incl. a full rate table)', async () => {
    const { poissonDraws } = await import('../../../registry/degradations/noise/noise.js');
    // 5,000 pixels over 3,000 distinct rates (small and large, repeated): more than the table
    // holds, so cached, newly added and uncached rates all occur
    const r = Rng.derive(6, 'rates');
    const lam = Float32Array.from({ length: 5000 }, (_, i) => (i % 7 === 0 ? 0 : Math.fround((r.int(0, 2999) % 3000) * 0.37 + (i % 3) * 0.001)));
    const batched = poissonDraws(Rng.derive(4, 'mixed'), lam);
    const one = Rng.derive(4, 'mixed');
    const single = lam.map((l) => poissonDraws(one, Float32Array.of(l))[0]);
    assert.deepEqual(Array.from(batched), Array.from(single));
    assert.ok(new Set(lam).size > 2048);
  });
});

describe('resize equals its float32 loop definition to the bit', () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`${backend}: shrinking axes (taps gathered at once) and growing ones (tap by tap), batch 2`, async () => {
      await useBackend(backend);
      const shape = [2, 37, 53, 3] as const;
      const data = Rng.derive(21, 'resize-ref').fillUniform(new Float32Array(2 * 37 * 53 * 3)) as Float32Array;
      const x = tf.tensor4d(data, [...shape]);
      for (const [scale, mode] of RESIZE_CASES) {
        const ref = resizeReference(data, shape, scale, mode);
        const y = resize(x, { scaleFactor: scale }, mode);
        assert.deepEqual(y.shape, ref.shape);
        const got = y.dataSync() as Float32Array;
        assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(ref.data.buffer)), `${backend} ${mode} x${scale}`);
        y.dispose();
      }
      x.dispose();
    });
  }
});

describe('resize plugin modes', () => {
  it('cv2-area mode runs through the plugin and records the mode', async () => {
    await useBackend('wasm');
    const d = await build({ type: 'degradation/resize', to: 'origin', modes: ['cv2-area'] });
    const x = tf.tensor4d(Rng.derive(9, 'a').fillUniform(new Float32Array(20 * 20 * 3)) as Float32Array, [1, 20, 20, 3]);
    const rec = [{}] as Record<string, unknown>[];
    const y = await d.apply(x, { rng: [Rng.derive(1, 'degradation', 0)], record: rec, origin: { height: 20, width: 20, scale: 2 } });
    assert.deepEqual(y.shape, [1, 10, 10, 3]);
    assert.equal((rec[0].resize as { mode: string }).mode, 'cv2-area');
    // integer factor: cv2 INTER_AREA = 2x2 box mean
    const xd = x.dataSync();
    assert.ok(Math.abs(y.dataSync()[0] - (xd[0] + xd[3] + xd[60] + xd[63]) / 4) < 1e-6);
    tf.dispose([x, y]);
  });
});
