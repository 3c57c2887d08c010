import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../../../framework/engine/backend.js';
import { groupNorm, layerNorm } from '../../../framework/engine/fused-ops.js';
import { withoutNativeOps } from '../../../framework/engine/native-ops.js';
import { nativeSkipReason, normalData, opsRun, relErr, tf } from './_native.js';

/**
 * The fused GroupNorm / LayerNorm kernels (native/ops/norm.cc, RassNorm / RassNormGrad) against
 * the composite normalisation (tfjs ops with the hand-written gradient of fused-ops.ts, itself
 * tested against plain compositions in tests/unit/engine/memory-ops.test.ts): output within
 * 1e-5 and x/gamma/beta gradients within 1e-4 of the largest entry, over shapes whose samples
 * span several work units (GroupNorm over 1,920 rows of 64 channels) or share one (LayerNorm
 * rows, a small GroupNorm), activations far from zero mean, and non-trivial gamma/beta. The
 * fused kernels must be what ran, and a second call must give the same bits.
 */
const skip = nativeSkipReason();

interface Case {
  name: string;
  shape: number[];
  norm: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor;
  offset?: number;
}

const CASES: Case[] = [
  { name: 'GroupNorm, 2 x 48 x 40 x 64, 8 groups (a sample spans 4 units)', shape: [2, 48, 40, 64], norm: (x, g, b) => groupNorm(x, g, b, 8, 1e-5) },
  { name: 'GroupNorm, 3 x 5 x 7 x 32, 4 groups (samples share a unit)', shape: [3, 5, 7, 32], norm: (x, g, b) => groupNorm(x, g, b, 4, 1e-6) },
  { name: 'LayerNorm, 3 x 300 x 96 (many rows per unit)', shape: [3, 300, 96], norm: (x, g, b) => layerNorm(x, g, b, 1e-5) },
  { name: 'LayerNorm of activations around 50 (mean far from zero)', shape: [700, 40], norm: (x, g, b) => layerNorm(x, g, b, 1e-5), offset: 50 },
];

function run(c: Case) {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const ch = c.shape[c.shape.length - 1] as number;
  const x = tf.add(tf.tensor(normalData(`${c.name}/x`, n, 2), c.shape), c.offset ?? 0);
  const gamma = tf.tensor1d(normalData(`${c.name}/g`, ch, 0.5).map((v) => v + 1));
  const beta = tf.tensor1d(normalData(`${c.name}/b`, ch, 0.5));
  const dy = tf.tensor(normalData(`${c.name}/dy`, n), c.shape);
  const out = c.norm(x, gamma, beta);
  const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(c.norm(a, g, b), dy)))([x, gamma, beta]);
  const r = { out: out.dataSync() as Float32Array, grads: grads.map((t) => t.dataSync() as Float32Array) };
  tf.dispose([x, gamma, beta, dy, out, ...grads]);
  return r;
}

describe('fused GroupNorm / LayerNorm kernels (native backend)', { skip }, () => {
  for (const c of CASES) {
    it(`${c.name}: output <= 1e-5, dx/dgamma/dbeta <= 1e-4 of the composite`, async () => {
      await useBackend('tensorflow');
      const ref = withoutNativeOps(() => run(c));
      const { value: fused, ops } = opsRun(() => run(c));
      assert.deepEqual([...new Set(ops.filter((o) => o.startsWith('Rass')))].sort(), ['RassNorm', 'RassNormGrad']);
      const e = relErr(fused.out, ref.out);
      assert.ok(e <= 1e-5, `output relative error ${e.toExponential(3)}`);
      ['dx', 'dgamma', 'dbeta'].forEach((name, i) => {
        const eg = relErr(fused.grads[i]!, ref.grads[i]!);
        assert.ok(eg <= 1e-4, `${name} relative error ${eg.toExponential(3)}`);
      });
      const again = run(c);
      assert.ok([again.out, ...again.grads].every((a, i) => Buffer.from(a.buffer).equals(Buffer.from([fused.out, ...fused.grads][i]!.buffer))), 'a second call gives the same bits');
    });
  }

  it('forward + backward keep the tensor count flat over 10 steps', async () => {
    await useBackend('tensorflow');
    const x = tf.tensor(normalData('flat/x', 2 * 8 * 8 * 32), [2, 8, 8, 32]);
    const g = tf.ones([32]);
    const b = tf.zeros([32]);
    const step = () => tf.tidy(() => tf.grads((a: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.square(groupNorm(a, gg, bb, 4, 1e-5))))([x, g, b]).forEach((t) => t.dataSync()));
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 10; i++) step();
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([x, g, b]);
  });
});
