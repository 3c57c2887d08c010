import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from '../../../framework/engine/wasm-kernels/index.js';
import { OneStepRestorer } from '../../../registry/backbones/sd/one-step.js';
import { UNet2DConditionModel, type UNetConfig } from '../../../registry/backbones/sd/unet.js';
import { AutoencoderKL, type VaeConfig } from '../../../registry/backbones/sd/vae.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';

/**
 * The wasm training kernels and the dilation / gatherND gradients, checked against an
 * independent float64 reference written here (direct loops over the conv definition, TF's
 * padding rules), on wasm and on cpu, and a tiny SD restorer's backward pass wasm vs cpu.
 */
const TOL = 1e-4;

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length, 'length');
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i]! - want[i]!));
    den = Math.max(den, Math.abs(want[i]!));
  }
  return num / Math.max(den, 1e-12);
}

function randn(seed: string, n: number): Float32Array {
  return Rng.derive(7, 'wasm-kernels', seed).fillNormal(new Float32Array(n)) as Float32Array;
}

type Pad = 'same' | 'valid';

interface ConvCase { n: number; h: number; w: number; ci: number; k: number; co: number; stride: number; dil: number; pad: Pad }

function padBefore(inSize: number, k: number, stride: number, dil: number, pad: Pad): { out: number; before: number } {
  const eff = (k - 1) * dil + 1;
  if (pad === 'valid') return { out: Math.ceil((inSize - eff + 1) / stride), before: 0 };
  const out = Math.ceil(inSize / stride);
  const total = Math.max((out - 1) * stride + eff - inSize, 0);
  return { out, before: Math.floor(total / 2) };
}

/**
 * Grouped conv reference (groups = ci for depthwise with multiplier co/ci... given by `depthwise`):
 * returns y and, for a cotangent r, dL/dx and dL/dw of L = sum(y * r).
 */
function refConv(x: Float32Array, wv: Float32Array, r: Float32Array, c: ConvCase, depthwise: boolean) {
  const { n, h, w, ci, k, stride, dil, pad } = c;
  const co = depthwise ? c.ci * c.co : c.co; // depthwise: c.co is the channel multiplier
  const ph = padBefore(h, k, stride, dil, pad);
  const pw = padBefore(w, k, stride, dil, pad);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(wv.length);
  for (let b = 0; b < n; b++) for (let oh = 0; oh < ph.out; oh++) for (let ow = 0; ow < pw.out; ow++) {
    for (let o = 0; o < co; o++) {
      const g = r[((b * ph.out + oh) * pw.out + ow) * co + o]!;
      for (let kh = 0; kh < k; kh++) {
        const ih = oh * stride - ph.before + kh * dil;
        if (ih < 0 || ih >= h) continue;
        for (let kw = 0; kw < k; kw++) {
          const iw = ow * stride - pw.before + kw * dil;
          if (iw < 0 || iw >= w) continue;
          const chans = depthwise ? [Math.floor(o / c.co)] : Array.from({ length: ci }, (_, i) => i);
          for (const ic of chans) {
            const xi = ((b * h + ih) * w + iw) * ci + ic;
            const wi = depthwise ? ((kh * k + kw) * ci + ic) * c.co + (o % c.co) : ((kh * k + kw) * ci + ic) * co + o;
            dx[xi] = dx[xi]! + wv[wi]! * g;
            dw[wi] = dw[wi]! + x[xi]! * g;
          }
        }
      }
    }
  }
  return { dx, dw, outShape: [n, ph.out, pw.out, co] };
}

function convCases(): ConvCase[] {
  const cases: ConvCase[] = [];
  for (const stride of [1, 2]) for (const dil of [1, 2]) for (const pad of ['same', 'valid'] as const) {
    if (stride > 1 && dil > 1) continue; // tfjs (like TF) allows dilation > 1 only with stride 1
    cases.push({ n: 2, h: 9, w: 8, ci: 3, k: 3, co: 4, stride, dil, pad });
  }
  cases.push({ n: 2, h: 6, w: 7, ci: 5, k: 2, co: 3, stride: 2, dil: 1, pad: 'same' });
  return cases;
}

function convGrads(c: ConvCase, depthwise: boolean): { dx: Float32Array; dw: Float32Array; r: Float32Array } {
  const wShape: [number, number, number, number] = [c.k, c.k, c.ci, c.co];
  const x = tf.tensor4d(randn('x', c.n * c.h * c.w * c.ci), [c.n, c.h, c.w, c.ci]);
  const w = tf.tensor4d(randn('w', wShape.reduce((a, b) => a * b)), wShape);
  const fwd = (xx: tf.Tensor4D, ww: tf.Tensor4D) => depthwise
    ? tf.depthwiseConv2d(xx, ww, c.stride, c.pad, 'NHWC', c.dil)
    : tf.conv2d(xx, ww, c.stride, c.pad, 'NHWC', c.dil);
  const outShape = fwd(x, w).shape;
  const rv = randn('r', outShape.reduce((a, b) => a * b));
  const r = tf.tensor(rv, outShape);
  const [dx, dw] = tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.mul(fwd(xx as tf.Tensor4D, ww as tf.Tensor4D), r)))([x, w]);
  const out = { dx: dx!.dataSync() as Float32Array, dw: dw!.dataSync() as Float32Array, r: rv };
  tf.dispose([x, w, r, dx!, dw!]);
  return out;
}

const label = (c: ConvCase) => `stride ${c.stride} dilation ${c.dil} ${c.pad} k${c.k} batch ${c.n}`;

async function onBackend(name: 'cpu' | 'wasm'): Promise<void> {
  await useBackend(name);
  registerWasmTrainingKernels();
}

describe('wasm training kernels', () => {
  before(async () => {
    await onBackend('wasm');
  });

  it('replace the cpu-backed fallbacks on wasm', () => {
    for (const k of WASM_TRAINING_KERNELS) assert.ok(tf.getKernel(k, 'wasm'), `${k} registered on wasm`);
    registerWasmTrainingKernels(); // idempotent
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    for (const depthwise of [false, true]) {
      it(`${depthwise ? 'depthwiseConv2d' : 'conv2d'} gradients on ${backend} match the float64 reference`, async () => {
        await onBackend(backend);
        for (const c0 of convCases()) {
          const c = depthwise ? { ...c0, co: 2 } : c0;
          const x = randn('x', c.n * c.h * c.w * c.ci);
          const w = randn('w', c.k * c.k * c.ci * c.co);
          const got = convGrads(c, depthwise);
          const ref = refConv(x, w, got.r, c, depthwise);
          const ex = relErr(got.dx, ref.dx);
          const ew = relErr(got.dw, ref.dw);
          assert.ok(ex <= TOL, `${label(c)} dx rel err ${ex}`);
          assert.ok(ew <= TOL, `${label(c)} dw rel err ${ew}`);
        }
      });
    }
  }

  it('conv2dTranspose gradients on wasm match cpu (stride 1/2, same/valid, batch 2)', async () => {
    const run = () => {
      const res: Float32Array[] = [];
      for (const stride of [1, 2]) for (const pad of ['same', 'valid'] as const) {
        const x = tf.tensor4d(randn('tx', 2 * 5 * 4 * 3), [2, 5, 4, 3]);
        const w = tf.tensor4d(randn('tw', 3 * 3 * 6 * 3), [3, 3, 6, 3]); // [k, k, outC, inC]
        const outH = pad === 'same' ? 5 * stride : (5 - 1) * stride + 3;
        const outW = pad === 'same' ? 4 * stride : (4 - 1) * stride + 3;
        const r = tf.tensor4d(randn('tr', 2 * outH * outW * 6), [2, outH, outW, 6]);
        const g = tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.mul(tf.conv2dTranspose(xx as tf.Tensor4D, ww as tf.Tensor4D, [2, outH, outW, 6], stride, pad), r)))([x, w]);
        for (const t of g) res.push(t.dataSync() as Float32Array);
        tf.dispose([x, w, r, ...g]);
      }
      return res;
    };
    await onBackend('cpu');
    const cpu = run();
    await onBackend('wasm');
    const wasm = run();
    wasm.forEach((v, i) => assert.ok(relErr(v, cpu[i]!) <= TOL, `case ${i}: rel err ${relErr(v, cpu[i]!)}`));
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`gather and gatherND gradients on ${backend} equal the analytic scatter-add (duplicates included)`, async () => {
      await onBackend(backend);
      const table = randn('table', 7 * 5);
      const ids = [3, 0, 3, 6, 1, 3, 0, 2]; // duplicates must add up
      const r = randn('gr', ids.length * 5);
      const want = new Float64Array(7 * 5);
      ids.forEach((id, i) => { for (let j = 0; j < 5; j++) want[id * 5 + j] = want[id * 5 + j]! + r[i * 5 + j]!; });
      const g = tf.tidy(() => {
        const t = tf.tensor2d(table, [7, 5]);
        const rr = tf.tensor3d(r, [2, 4, 5]);
        const idx = tf.tensor2d(ids, [2, 4], 'int32');
        return tf.grad((tt: tf.Tensor) => tf.sum(tf.mul(tf.gather(tt, idx), rr)))(t);
      });
      assert.ok(relErr(g.dataSync(), want) <= TOL, `gather grad rel err ${relErr(g.dataSync(), want)}`);
      g.dispose();

      // gatherND on [2, 4, 3] params with [b, i] index pairs (batch 2, one duplicate)
      const params = randn('gp', 2 * 4 * 3);
      const pairs = [[0, 1], [1, 3], [0, 1], [1, 0], [0, 2]];
      const r2 = randn('gr2', pairs.length * 3);
      const want2 = new Float64Array(2 * 4 * 3);
      pairs.forEach(([b, i], p) => { for (let j = 0; j < 3; j++) want2[(b! * 4 + i!) * 3 + j] = want2[(b! * 4 + i!) * 3 + j]! + r2[p * 3 + j]!; });
      const g2 = tf.tidy(() => {
        const p = tf.tensor3d(params, [2, 4, 3]);
        const rr = tf.tensor2d(r2, [pairs.length, 3]);
        const idx = tf.tensor2d(pairs.flat(), [pairs.length, 2], 'int32');
        return tf.grad((pp: tf.Tensor) => tf.sum(tf.mul(tf.gatherND(pp, idx), rr)))(p);
      });
      assert.ok(relErr(g2.dataSync(), want2) <= TOL, `gatherND grad rel err ${relErr(g2.dataSync(), want2)}`);
      g2.dispose();
    });
  }

  it('unsortedSegmentSum on wasm drops out-of-range ids and matches cpu', async () => {
    const run = () => tf.tidy(() => tf.unsortedSegmentSum(tf.tensor2d(randn('us', 6 * 4), [6, 4]), tf.tensor1d([2, 0, 2, 5, 1, 9], 'int32'), 4).dataSync());
    await onBackend('cpu');
    const cpu = run();
    await onBackend('wasm');
    assert.ok(relErr(run(), cpu) <= TOL);
    // id 5 and 9 are out of range: segment 3 stays zero.
    assert.deepEqual(Array.from(run().slice(12, 16)), [0, 0, 0, 0]);
  });

  it('maxPool (our wasm MaxPoolGrad), avgPool, mirrorPad gradients on wasm match cpu (stride 1/2, same/valid, batch 2)', async () => {
    const run = () => {
      const res: Float32Array[] = [];
      for (const stride of [1, 2]) for (const pad of ['same', 'valid'] as const) {
        const g = tf.tidy(() => {
          const x = tf.tensor4d(randn('px', 2 * 7 * 6 * 3), [2, 7, 6, 3]);
          const f = (xx: tf.Tensor) => {
            const m = tf.maxPool(xx as tf.Tensor4D, 3, stride, pad);
            const a = tf.avgPool(xx as tf.Tensor4D, 2, stride, pad);
            const p = tf.mirrorPad(xx as tf.Tensor4D, [[0, 0], [2, 1], [1, 2], [0, 0]], 'reflect');
            return tf.addN([tf.sum(tf.mul(m, tf.tensor(randn('pm', m.size), m.shape))), tf.sum(tf.mul(a, tf.tensor(randn('pa', a.size), a.shape))), tf.sum(tf.mul(p, tf.tensor(randn('pp', p.size), p.shape)))]);
          };
          return tf.grad(f)(x);
        });
        res.push(g.dataSync() as Float32Array);
        g.dispose();
      }
      return res;
    };
    await onBackend('cpu');
    const cpu = run();
    await onBackend('wasm');
    const wasm = run();
    wasm.forEach((v, i) => assert.ok(relErr(v, cpu[i]!) <= TOL, `case ${i}: rel err ${relErr(v, cpu[i]!)}`));
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`a where/greater branch is differentiable on ${backend} (zero comparison gradients), equal to the analytic gradient`, async () => {
      await onBackend(backend);
      const xv = randn('wx', 2 * 9);
      const g = tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(tf.where(tf.logicalAnd(tf.greater(x, 0), tf.lessEqual(x, 1)), tf.mul(x, 3), tf.exp(x))))(tf.tensor2d(xv, [2, 9])));
      const want = Array.from(xv, (v) => (v > 0 && v <= 1 ? 3 : Math.exp(v)));
      assert.ok(relErr(g.dataSync(), want) <= TOL, `rel err ${relErr(g.dataSync(), want)}`);
      g.dispose();
    });
  }

  it('einsum on wasm (operands passed as an array) matches cpu', async () => {
    const run = () => tf.tidy(() => tf.einsum('nhwq,nqc->nhwc', tf.tensor4d(randn('e1', 2 * 3 * 4 * 5), [2, 3, 4, 5]), tf.tensor3d(randn('e2', 2 * 5 * 6), [2, 5, 6])).dataSync());
    await onBackend('cpu');
    const cpu = run();
    await onBackend('wasm');
    assert.ok(relErr(run(), cpu) <= TOL);
  });

  it('a tiny SD restorer (VAE + UNet) backward pass on wasm matches cpu, memory flat', async () => {
    const SD = join(process.cwd(), 'tests/fixtures/backbones/tiny-sd');
    const cfg = <T>(c: string) => JSON.parse(readFileSync(join(SD, c, 'config.json'), 'utf8')) as T;
    const run = async () => {
      const vae = new AutoencoderKL(cfg<VaeConfig>('vae'), 1);
      const unet = new UNet2DConditionModel(cfg<UNetConfig>('unet'), 2);
      const r = Rng.derive(4, 'wasm-e2e');
      const lq = tf.tensor4d(r.fillUniform(new Float32Array(2 * 8 * 8 * 3), -1, 1) as Float32Array, [2, 8, 8, 3]);
      const hq = tf.tensor4d(r.fillUniform(new Float32Array(2 * 8 * 8 * 3), -1, 1) as Float32Array, [2, 8, 8, 3]);
      const ctx = tf.tensor3d(r.fillNormal(new Float32Array(4 * 32)) as Float32Array, [1, 4, 32]);
      const model = new OneStepRestorer(vae, unet, ctx);
      const vars = [...vae.store.params.values(), ...unet.store.params.values()].map((p) => p.variable);
      let grads: Float32Array[] = [];
      await assertTensorCountFlat(() => {
        const { value, grads: g } = tf.variableGrads(() => tf.mean(tf.abs(tf.sub(model.run(lq), hq))) as tf.Scalar, vars);
        grads = vars.map((v) => g[v.name]!.dataSync() as Float32Array);
        tf.dispose([value, ...Object.values(g)]);
      }, { warmup: 1, steps: 1, label: 'tiny SD backward' });
      tf.dispose([lq, hq, ctx]);
      vae.dispose();
      unet.dispose();
      return { grads, names: vars.map((v) => v.name) };
    };
    await onBackend('cpu');
    const cpu = await run();
    await onBackend('wasm');
    const wasm = await run();
    assert.equal(wasm.names.length, cpu.names.length);
    // Biases feeding a GroupNorm have a gradient that is exactly 0 analytically; both backends
    // give float noise (~1e-9) there. Those tensors (cpu max < 1e-5 of the largest gradient)
    // must stay that small on wasm too; every other tensor is compared relative to its own max.
    const maxAbs = (g: Float32Array) => g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const globalMax = Math.max(...cpu.grads.map(maxAbs));
    let worst = 0;
    let worstName = '';
    let compared = 0;
    for (const [i, g] of cpu.grads.entries()) {
      const w = wasm.grads[i]!;
      if (maxAbs(g) < 1e-5 * globalMax) {
        assert.ok(maxAbs(w) < 1e-5 * globalMax, `${cpu.names[i]}: zero on cpu (${maxAbs(g)}) but ${maxAbs(w)} on wasm`);
        continue;
      }
      compared++;
      const e = relErr(w, g);
      if (e > worst) { worst = e; worstName = cpu.names[i]!; }
    }
    assert.ok(compared > cpu.grads.length / 2, `most gradients are non-trivial (${compared} of ${cpu.grads.length})`);
    assert.ok(worst <= TOL, `worst gradient rel err ${worst} at ${worstName}`);
  });
});
