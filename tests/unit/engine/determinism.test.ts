import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import { registerWasmTrainingKernels } from '../../../framework/engine/wasm-kernels/index.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';

/**
 * Same seed + same backend => bit-identical losses. The net goes through every kernel the
 * wasm training kernels add (strided and dilated conv gradients, depthwise gradients, gather
 * and gatherND gradients) plus Adam, so a nondeterministic kernel (e.g. an unordered
 * accumulation) would show up as differing losses.
 */
function trainLosses(seed: number, steps: number): Promise<number[]> {
  const r = Rng.derive(seed, 'determinism');
  const t = (shape: number[], std = 0.3) => tf.variable(tf.tensor(r.fillNormal(new Float32Array(shape.reduce((a, b) => a * b)), 0, std) as Float32Array, shape));
  const emb = t([6, 4]);
  const w1 = t([3, 3, 4, 8]);
  const w2 = t([3, 3, 8, 1], 0.5);
  const w3 = t([3, 3, 8, 8]);
  const x = tf.tensor4d(r.fillNormal(new Float32Array(2 * 8 * 8 * 4)) as Float32Array, [2, 8, 8, 4]);
  const target = tf.tensor4d(r.fillNormal(new Float32Array(2 * 4 * 4 * 8)) as Float32Array, [2, 4, 4, 8]);
  const ids = tf.tensor1d([1, 4, 4, 0], 'int32');
  const nd = tf.tensor2d([[0, 1], [1, 2], [0, 1]], [3, 2], 'int32');
  const opt = tf.train.adam(0.01);
  const losses: number[] = [];
  const loss = () => tf.tidy(() => {
    const e = tf.reshape(tf.sum(tf.gather(emb, ids), 0), [1, 1, 1, 4]);
    let h = tf.relu(tf.conv2d(tf.add(x, e), w1 as tf.Variable<tf.Rank.R4>, 2, 'same'));
    h = tf.depthwiseConv2d(h, w2 as tf.Variable<tf.Rank.R4>, 1, 'same', 'NHWC', 2);
    h = tf.conv2d(h, w3 as tf.Variable<tf.Rank.R4>, 1, 'same', 'NHWC', 2);
    const picked = tf.gatherND(tf.reshape(h, [2, 16, 8]), nd);
    return tf.add(tf.mean(tf.square(tf.sub(h, target))), tf.mean(tf.square(picked))) as tf.Scalar;
  });
  const run = async () => {
    await assertTensorCountFlat(() => {
      const l = opt.minimize(loss, true, [emb, w1, w2, w3])!;
      losses.push(l.dataSync()[0]!);
      l.dispose();
    }, { warmup: 1, steps: steps - 1, label: 'determinism training step' });
    tf.dispose([emb, w1, w2, w3, x, target, ids, nd]);
    opt.dispose();
    return losses;
  };
  return run();
}

describe('determinism', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    it(`two runs with the same seed on ${backend} give bit-identical losses; another seed differs`, async () => {
      await useBackend(backend);
      registerWasmTrainingKernels();
      const a = await trainLosses(11, 4);
      const b = await trainLosses(11, 4);
      const c = await trainLosses(12, 4);
      assert.ok(a.every(Number.isFinite), `finite losses ${a}`);
      assert.ok(a[3]! < a[0]!, `loss decreases: ${a}`);
      assert.deepEqual(b, a);
      assert.notDeepEqual(c, a);
    });
  }
});
