import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend, type BackendName } from '../../../framework/engine/backend.js';
import { filterPolyphase } from '../../../registry/degradations/common/filter2d.js';
import { resize } from '../../../registry/degradations/resize/resize.js';
import { resizeReference, RESIZE_CASES } from '../../unit/degradations/resize-reference.js';
import { nativeSkipReason, normalData, relErr, tf } from './_native.js';

/**
 * Every kernel family the project's models use, forward and gradient, on the native
 * TensorFlow backend against tfjs's reference cpu backend and the wasm backend. Each case is a
 * scalar loss sum(op(inputs) * w) with fixed random w, so the gradients are the op's
 * vector-Jacobian products. Tolerance: 1e-4 of the reference tensor's largest magnitude.
 */
const TOL = 1e-4;
const skip = nativeSkipReason();

type Inputs = Record<string, { shape: number[]; std?: number }>;
interface Case {
  name: string;
  inputs: Inputs;
  op(x: Record<string, tf.Tensor>): tf.Tensor;
  /** Reference backends (default cpu and wasm). */
  refs?: BackendName[];
  /** tfjs has no gradient for this op (forward only). */
  forwardOnly?: boolean;
  /** Inputs that are indices/constants (no gradient). */
  constants?: Record<string, () => tf.Tensor>;
}

const nhwc = (n: number, h: number, w: number, c: number) => [n, h, w, c];
const cases: Case[] = [
  { name: 'conv2d 3x3 same', inputs: { x: { shape: nhwc(2, 9, 9, 4) }, f: { shape: [3, 3, 4, 6], std: 0.3 } }, op: ({ x, f }) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same') },
  { name: 'conv2d stride 2 valid', inputs: { x: { shape: nhwc(2, 11, 10, 3) }, f: { shape: [3, 3, 3, 5], std: 0.3 } }, op: ({ x, f }) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, 'valid') },
  { name: 'conv2d stride 2 explicit pad', inputs: { x: { shape: nhwc(1, 8, 8, 4) }, f: { shape: [3, 3, 4, 4], std: 0.3 } }, op: ({ x, f }) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, [[0, 0], [1, 1], [1, 1], [0, 0]]) },
  // tfjs's Conv2D gradient rejects dilation > 1 on every backend: forward only.
  { name: 'conv2d dilation 2', inputs: { x: { shape: nhwc(1, 12, 12, 3) }, f: { shape: [3, 3, 3, 4], std: 0.3 } }, op: ({ x, f }) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same', 'NHWC', 2), forwardOnly: true },
  { name: 'conv2d 1x1', inputs: { x: { shape: nhwc(2, 5, 5, 8) }, f: { shape: [1, 1, 8, 3], std: 0.3 } }, op: ({ x, f }) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'valid') },
  // 1x1 convolutions with unit strides run as MatMul on native (native-kernels.ts), strided ones as convolutions
  { name: 'conv2d 1x1 explicit zero pad (as MatMul)', inputs: { x: { shape: nhwc(2, 6, 4, 5) }, f: { shape: [1, 1, 5, 7], std: 0.3 } }, op: ({ x, f }) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, [[0, 0], [0, 0], [0, 0], [0, 0]]) },
  { name: 'conv2d 1x1 stride 2 (a convolution)', inputs: { x: { shape: nhwc(1, 7, 7, 4) }, f: { shape: [1, 1, 4, 3], std: 0.3 } }, op: ({ x, f }) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, 'valid') },
  // small float transposes run on int32 bits on native, large ones as float transposes
  { name: 'transpose small (heads split)', inputs: { x: { shape: [2, 5, 3, 4] } }, op: ({ x }) => tf.transpose(x!, [0, 2, 1, 3]) },
  { name: 'transpose large', inputs: { x: { shape: [2, 40, 30, 16] } }, op: ({ x }) => tf.transpose(x!, [0, 3, 2, 1]) },
  { name: 'conv2dTranspose stride 2', inputs: { x: { shape: nhwc(1, 5, 5, 4) }, f: { shape: [4, 4, 3, 4], std: 0.3 } }, op: ({ x, f }) => tf.conv2dTranspose(x as tf.Tensor4D, f as tf.Tensor4D, [1, 10, 10, 3], 2, 'same') },
  { name: 'depthwiseConv2d', inputs: { x: { shape: nhwc(2, 8, 8, 4) }, f: { shape: [3, 3, 4, 2], std: 0.3 } }, op: ({ x, f }) => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same') },
  { name: 'depthwiseConv2d explicit pad', inputs: { x: { shape: nhwc(1, 7, 6, 3) }, f: { shape: [3, 3, 3, 1], std: 0.3 } }, op: ({ x, f }) => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, [[0, 0], [1, 1], [2, 0], [0, 0]]) },
  { name: 'conv2d explicit asymmetric pad', inputs: { x: { shape: nhwc(2, 7, 9, 3) }, f: { shape: [3, 3, 3, 4], std: 0.3 } }, op: ({ x, f }) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, [[0, 0], [2, 0], [1, 1], [0, 0]]) },
  { name: 'depthwiseConv2d stride 2', inputs: { x: { shape: nhwc(1, 9, 9, 3) }, f: { shape: [3, 3, 3, 1], std: 0.3 } }, op: ({ x, f }) => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, 'valid') },
  { name: 'matMul', inputs: { a: { shape: [17, 33] }, b: { shape: [33, 9] } }, op: ({ a, b }) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D) },
  { name: 'matMul transposed', inputs: { a: { shape: [33, 17] }, b: { shape: [9, 33] } }, op: ({ a, b }) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, true, true) },
  { name: 'batch matMul (attention scores)', inputs: { q: { shape: [3, 16, 8] }, k: { shape: [3, 12, 8] } }, op: ({ q, k }) => tf.matMul(q as tf.Tensor3D, k as tf.Tensor3D, false, true) },
  {
    name: 'group norm (moments over groups)',
    inputs: { x: { shape: nhwc(2, 6, 6, 8), std: 2 }, g: { shape: [8] } },
    op: ({ x, g }) => {
      const r = tf.reshape(x!, [2, 6, 6, 4, 2]);
      const { mean, variance } = tf.moments(r, [1, 2, 4], true);
      const n = tf.div(tf.sub(r, mean), tf.sqrt(tf.add(variance, 1e-5)));
      return tf.mul(tf.reshape(n, [2, 6, 6, 8]), g!);
    },
  },
  { name: 'softmax', inputs: { x: { shape: [4, 7, 19], std: 3 } }, op: ({ x }) => tf.softmax(x!) },
  { name: 'logSoftmax', inputs: { x: { shape: [6, 11], std: 3 } }, op: ({ x }) => tf.logSoftmax(x!) },
  { name: 'gather (embedding)', inputs: { t: { shape: [10, 6] } }, constants: { i: () => tf.tensor1d([3, 0, 9, 3, 7], 'int32') }, op: ({ t, i }) => tf.gather(t!, i!) },
  { name: 'resizeNearestNeighbor x2', inputs: { x: { shape: nhwc(1, 5, 6, 3) } }, op: ({ x }) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [10, 12]) },
  // (the stock cpu/wasm/tfjs-node resize gradients are wrong in places; backend.ts registers
  // corrected ones: framework/engine/resize-grad-kernels.ts, native-kernels.ts)
  { name: 'resizeNearestNeighbor half-pixel, batch 2', inputs: { x: { shape: nhwc(2, 5, 6, 3) } }, op: ({ x }) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [9, 13], false, true) },
  { name: 'resizeBilinear x2 half-pixel', inputs: { x: { shape: nhwc(1, 5, 6, 3) } }, op: ({ x }) => tf.image.resizeBilinear(x as tf.Tensor4D, [10, 12], false, true) },
  { name: 'resizeBilinear down align-corners', inputs: { x: { shape: nhwc(2, 9, 8, 2) } }, op: ({ x }) => tf.image.resizeBilinear(x as tf.Tensor4D, [4, 5], true) },
  { name: 'mirrorPad reflect', inputs: { x: { shape: nhwc(1, 6, 6, 2) } }, op: ({ x }) => tf.mirrorPad(x!, [[0, 0], [2, 2], [1, 3], [0, 0]], 'reflect') },
  { name: 'mirrorPad symmetric', inputs: { x: { shape: nhwc(1, 5, 5, 2) } }, op: ({ x }) => tf.mirrorPad(x!, [[0, 0], [1, 1], [2, 2], [0, 0]], 'symmetric') },
  { name: 'gelu-like tanh/sigmoid/silu chain', inputs: { x: { shape: [64] } }, op: ({ x }) => tf.add(tf.mul(x!, tf.sigmoid(x!)), tf.tanh(tf.mul(x!, 0.7))) },
  { name: 'avgPool / maxPool', inputs: { x: { shape: nhwc(1, 8, 8, 3) } }, op: ({ x }) => tf.add(tf.avgPool(x as tf.Tensor4D, 2, 2, 'valid'), tf.pad(tf.maxPool(x as tf.Tensor4D, 3, 2, 'valid'), [[0, 0], [0, 1], [0, 1], [0, 0]])) },
];

interface Result {
  out: Float32Array;
  grads: Float32Array[];
}

function runCase(c: Case): Result {
  return tf.tidy(() => {
    const names = Object.keys(c.inputs);
    const xs = names.map((n) => tf.tensor(normalData(`${c.name}/${n}`, c.inputs[n]!.shape.reduce((a, b) => a * b, 1), c.inputs[n]!.std ?? 1), c.inputs[n]!.shape));
    const consts = Object.fromEntries(Object.entries(c.constants ?? {}).map(([k, f]) => [k, f()]));
    const call = (...ts: tf.Tensor[]) => c.op({ ...consts, ...Object.fromEntries(names.map((n, i) => [n, ts[i]!])) });
    const y = call(...xs);
    const w = tf.tensor(normalData(`${c.name}/w`, y.size), y.shape);
    const grads = c.forwardOnly ? [] : tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(call(...ts), w)))(xs);
    // Results leave the tidy as plain arrays (tidy would walk a returned typed array).
    const r: Result = { out: y.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
    return r as unknown as tf.Tensor;
  }) as unknown as Result;
}

describe('native TensorFlow kernels match the cpu and wasm backends (forward + grad)', { skip }, () => {
  const results: Record<BackendName, Record<string, Result | Error>> = { cpu: {}, wasm: {}, tensorflow: {} };
  before(async () => {
    for (const b of ['cpu', 'wasm', 'tensorflow'] as BackendName[]) {
      await useBackend(b);
      for (const c of cases) if (b === 'tensorflow' || (c.refs ?? ['cpu', 'wasm']).includes(b)) {
          try {
            results[b][c.name] = runCase(c);
          } catch (e) {
            results[b][c.name] = e as Error;
          }
        }
    }
  });
  for (const c of cases) {
    it(c.name, () => {
      const a = results.tensorflow[c.name]!;
      if (a instanceof Error) throw a;
      let compared = 0;
      for (const ref of c.refs ?? (['cpu', 'wasm'] as BackendName[])) {
        const b = results[ref][c.name]!;
        if (b instanceof Error) throw b;
        compared++;
        const e = relErr(a.out, b.out);
        assert.ok(e <= TOL, `${c.name} forward vs ${ref}: rel err ${e.toExponential(2)}`);
        assert.equal(a.grads.length, b.grads.length);
        a.grads.forEach((g, i) => {
          const eg = relErr(g, b.grads[i]!);
          assert.ok(eg <= TOL, `${c.name} grad of ${Object.keys(c.inputs)[i]} vs ${ref}: rel err ${eg.toExponential(2)}`);
        });
      }
      assert.ok(compared > 0, `${c.name}: no reference backend could run it`);
    });
  }
});

describe('native resizeNearestNeighbor gradient equals the analytic block sums (batch 2)', { skip }, () => {
  // 2x, 4x and 2x rows with 4x columns take the Reshape + Sum form (native-kernels.ts,
  // XLA-compilable); 3x and a mixed 2x/3x TensorFlow's ResizeNearestNeighborGrad
  for (const [h, w, fy, fx] of [[6, 6, 2, 2], [3, 5, 4, 4], [3, 5, 2, 4], [4, 4, 3, 3], [5, 4, 2, 3]] as const) {
    it(`2x${h}x${w}x8 -> ${h * fy}x${w * fx}: each input pixel gets the sum of its ${fy}x${fx} block of dy`, async () => {
      await useBackend('tensorflow');
      const [n, c, oh, ow] = [2, 8, h * fy, w * fx];
      const dyv = normalData(`nn-grad/dy/${fy}x${fx}`, n * oh * ow * c);
      const ref = new Float32Array(n * h * w * c);
      for (let b = 0; b < n; b++)
        for (let y = 0; y < oh; y++)
          for (let x = 0; x < ow; x++)
            for (let k = 0; k < c; k++) ref[((b * h + Math.floor(y / fy)) * w + Math.floor(x / fx)) * c + k] += dyv[((b * oh + y) * ow + x) * c + k]!;
      const g = tf.tidy(() => {
        const dy = tf.tensor(dyv, [n, oh, ow, c]);
        return tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [oh, ow]), dy)))(tf.zeros([n, h, w, c]));
      });
      const e = relErr(g.dataSync() as Float32Array, ref);
      g.dispose();
      assert.ok(e <= 1e-6, `rel err ${e}`);
    });
  }
});

describe('polyphase filtering: the tensor-op form equals the JS form to the bit (native)', { skip }, () => {
  // (n, h, w, c, kh, kw, sy, sx): 2-D blur kernels with 4x4 phases, the 1-D passes with 8, and a
  // kernel larger than the image (the reflect padding's gather fallback)
  for (const [n, h, w, c, kh, kw, sy, sx] of [[2, 37, 50, 3, 15, 15, 4, 4], [1, 64, 61, 3, 21, 21, 4, 4], [1, 40, 33, 1, 51, 1, 8, 1], [1, 40, 33, 3, 1, 51, 1, 8], [1, 9, 7, 3, 21, 21, 4, 4]] as const) {
    it(`${n}x${h}x${w}x${c}, ${kh}x${kw} kernel, ${sy}x${sx} phases`, async () => {
      await useBackend('tensorflow');
      const x = tf.tensor4d(normalData(`polyphase/${h}x${w}x${kh}`, n * h * w * c), [n, h, w, c]);
      const k = normalData(`polyphase/k${kh}x${kw}`, kh * kw);
      const host = filterPolyphase(x, k, kh, kw, sy, sx, 'host');
      const ops = filterPolyphase(x, k, kh, kw, sy, sx, 'ops');
      assert.deepEqual(ops.shape, [n, h, w, c]);
      assert.deepEqual(Array.from(ops.dataSync()), Array.from(host.dataSync()));
      tf.dispose([x, host, ops]);
    });
  }
});

describe('resize on native equals its float32 loop definition to the bit (gathered and per-tap forms)', { skip }, () => {
  it('every mode, shrinking and growing, batch 2', async () => {
    await useBackend('tensorflow');
    const shape = [2, 37, 53, 3] as const;
    const data = Float32Array.from(normalData('resize-ref', 2 * 37 * 53 * 3), (v) => Math.fround(0.5 + 0.2 * v));
    const x = tf.tensor4d(data, [...shape]);
    for (const [scale, mode] of RESIZE_CASES) {
      const ref = resizeReference(data, shape, scale, mode);
      const y = resize(x, { scaleFactor: scale }, mode);
      const got = y.dataSync() as Float32Array;
      assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(ref.data.buffer)), `${mode} x${scale}`);
      y.dispose();
    }
    x.dispose();
  });
});
