import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend, type BackendName } from '../../../framework/engine/backend.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';
import { nativeSkipReason, normalData, tf } from './_native.js';

/**
 * The same tiny training run (identical initial weights and data, Adam) on the native backend
 * and on a reference backend gives the same loss curve within 1e-4 relative. Two nets: a
 * conv net (explicitly padded convs, group-norm-like moments, resize, as the models use) and
 * an attention block (batched matmuls, softmax).
 */
const TOL = 1e-4;
const STEPS = 6;
const skip = nativeSkipReason();

type Params = Record<string, tf.Variable>;
interface Net {
  shapes: Record<string, number[]>;
  loss(p: Params, x: tf.Tensor, y: tf.Tensor): tf.Scalar;
  x: number[];
  y: number[];
}

const convNet: Net = {
  shapes: { w1: [3, 3, 3, 8], w2: [3, 3, 8, 8], w3: [1, 1, 8, 3], g: [8] },
  // Batch 2: the stock cpu ResizeNearestNeighborGrad was wrong for batch > 1 (replaced in
  // framework/engine/resize-grad-kernels.ts); this run would diverge from native without it.
  x: [2, 12, 12, 3],
  y: [2, 12, 12, 3],
  loss: (p, x, y) => {
    const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [1, 1], [1, 1], [0, 0]];
    let h = tf.conv2d(x as tf.Tensor4D, p.w1 as unknown as tf.Tensor4D, 2, pad);
    const { mean, variance } = tf.moments(h, [1, 2], true);
    h = tf.mul(tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, 1e-5))), p.g!);
    h = tf.mul(h, tf.sigmoid(h));
    h = tf.conv2d(h, p.w2 as unknown as tf.Tensor4D, 1, pad);
    h = tf.image.resizeNearestNeighbor(h, [12, 12]);
    const out = tf.conv2d(h, p.w3 as unknown as tf.Tensor4D, 1, 'valid');
    return tf.mean(tf.square(tf.sub(out, y)));
  },
};

const attentionNet: Net = {
  shapes: { wq: [12, 12], wk: [12, 12], wv: [12, 12], wo: [12, 4] },
  x: [2, 10, 12],
  y: [2, 10, 4],
  loss: (p, x, y) => {
    const e = x;
    const proj = (w: tf.Tensor) => tf.reshape(tf.matMul(tf.reshape(e, [-1, 12]), w as tf.Tensor2D), [2, 10, 12]);
    const att = tf.softmax(tf.div(tf.matMul(proj(p.wq!), proj(p.wk!), false, true), Math.sqrt(12)));
    const o = tf.matMul(tf.reshape(tf.matMul(att, proj(p.wv!)), [-1, 12]), p.wo as unknown as tf.Tensor2D);
    return tf.mean(tf.square(tf.sub(tf.reshape(o, [2, 10, 4]), y)));
  },
};

async function train(net: Net, backend: BackendName, label: string): Promise<number[]> {
  await useBackend(backend);
  const params: Params = Object.fromEntries(Object.entries(net.shapes).map(([k, s]) => [k, tf.variable(tf.tensor(normalData(`${label}/${k}`, s.reduce((a, b) => a * b, 1), k === 'g' ? 0.1 : 0.3), s))]));
  const x = tf.tensor(normalData(`${label}/x`, net.x.reduce((a, b) => a * b, 1)), net.x);
  const y = tf.tensor(normalData(`${label}/y`, net.y.reduce((a, b) => a * b, 1)), net.y);
  const opt = tf.train.adam(0.01);
  const losses: number[] = [];
  const step = () => {
    const l = opt.minimize(() => net.loss(params, x, y), true, Object.values(params))!;
    losses.push(l.dataSync()[0]!);
    l.dispose();
  };
  await assertTensorCountFlat(step, { warmup: 2, steps: STEPS - 2, label: `${label} on ${backend}` });
  opt.dispose();
  tf.dispose([x, y, ...Object.values(params)]);
  return losses;
}

function assertSameCurve(a: number[], b: number[], what: string): void {
  assert.equal(a.length, b.length);
  assert.ok(a[a.length - 1]! < a[0]!, `${what}: the loss did not go down (${a.join(', ')})`);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= TOL * Math.abs(b[i]!), `${what} step ${i}: ${v} vs ${b[i]} (rel ${(Math.abs(v - b[i]!) / Math.abs(b[i]!)).toExponential(2)})`));
}

describe('the same tiny training run gives the same losses on native and reference backends', { skip }, () => {
  it('attention block (batched matmul, softmax): native vs wasm and cpu', async () => {
    const native = await train(attentionNet, 'tensorflow', 'att');
    assertSameCurve(native, await train(attentionNet, 'wasm', 'att'), 'attention native vs wasm');
    assertSameCurve(native, await train(attentionNet, 'cpu', 'att'), 'attention native vs cpu');
  });

  it('conv net (explicit-pad conv, moments, resize): native vs cpu and wasm', async () => {
    const native = await train(convNet, 'tensorflow', 'conv');
    assertSameCurve(native, await train(convNet, 'cpu', 'conv'), 'conv native vs cpu');
    // (wasm runs Conv2DBackpropFilter through the cpu fallback: framework/engine/wasm-fallback-kernels.ts)
    assertSameCurve(native, await train(convNet, 'wasm', 'conv'), 'conv native vs wasm');
  });
});
