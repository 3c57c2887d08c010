/**
 * The quickstart experiment's pieces: the built-in cross-entropy and the example external
 * package's label-smoothing loss against central finite differences of their own loss
 * (float64 reference computed in JS), label smoothing 0 equal to plain cross-entropy, and
 * the trainer's step keeping the tensor count flat.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../../framework/engine/backend.js';
import { packageRoot } from '../../../framework/paths.js';
import { PluginRegistry } from '../../../framework/plugins/registry.js';
import { loadExternalPackage } from '../../../framework/plugins/load-external.js';
import { toyCrossEntropy, type ClassifierLoss } from '../../../experiments/toy-classifier/loss.js';
import { MlpTrainer, gatherBatch } from '../../../experiments/toy-classifier/trainer.js';
import { batchIndices, makeBlobs } from '../../../experiments/toy-classifier/data.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';

const ctx = {} as never;

/** float64 reference: -mean_b sum_k q log softmax(z) with q = (1-eps) onehot + eps/K */
function refLoss(z: number[][], labels: number[], eps: number): number {
  let total = 0;
  for (let b = 0; b < z.length; b++) {
    const m = Math.max(...z[b]);
    const lse = m + Math.log(z[b].reduce((a, v) => a + Math.exp(v - m), 0));
    const K = z[b].length;
    for (let k = 0; k < K; k++) total -= ((k === labels[b] ? 1 - eps : 0) + eps / K) * (z[b][k] - lse);
  }
  return total / z.length;
}

function checkLoss(loss: ClassifierLoss, eps: number): void {
  const z = [[0.3, -1.2, 2.0], [1.5, 0.1, -0.4], [-0.7, 0.9, 0.2], [0.0, 0.0, 0.0]];
  const labels = [2, 0, 1, 2];
  const onehot = labels.map((l) => [0, 1, 2].map((k) => (k === l ? 1 : 0)));
  const { loss: l, dLogits } = tf.tidy(() => {
    const r = loss.compute(tf.tensor2d(z), tf.tensor2d(onehot));
    return { loss: r.loss.dataSync()[0], dLogits: r.dLogits.arraySync() };
  });
  assert.ok(Math.abs(l - refLoss(z, labels, eps)) < 1e-5, `loss ${l} vs ${refLoss(z, labels, eps)}`);
  const h = 1e-5;
  for (let b = 0; b < z.length; b++) {
    for (let k = 0; k < 3; k++) {
      const zp = z.map((r) => [...r]);
      const zm = z.map((r) => [...r]);
      zp[b][k] += h;
      zm[b][k] -= h;
      const fd = (refLoss(zp, labels, eps) - refLoss(zm, labels, eps)) / (2 * h);
      assert.ok(Math.abs(dLogits[b][k] - fd) < 1e-5, `dLogits[${b}][${k}] ${dLogits[b][k]} vs finite difference ${fd}`);
    }
  }
}

describe('toy classifier', () => {
  let smoothing: (eps: number) => ClassifierLoss;
  before(async () => {
    await useBackend('cpu');
    const reg = new PluginRegistry();
    await loadExternalPackage(reg, './examples/custom-loss', packageRoot());
    const p = reg.get('loss', 'label-smoothing-ce');
    smoothing = (eps) => p.create({ smoothing: eps }, ctx) as ClassifierLoss;
  });

  it('built-in cross-entropy: value and logit gradient match a float64 reference', () => {
    checkLoss(toyCrossEntropy.create({}, ctx) as ClassifierLoss, 0);
  });

  it('example external label-smoothing loss: value and gradient match the reference; smoothing 0 is cross-entropy', () => {
    checkLoss(smoothing(0.1), 0.1);
    checkLoss(smoothing(0.35), 0.35);
    checkLoss(smoothing(0), 0);
  });

  it('training steps keep the tensor count flat and lower the loss', async () => {
    const data = makeBlobs(1, { n: 128, dims: 8, classes: 3, spread: 1, noise: 1, split: 'train' });
    const trainer = new MlpTrainer(8, 3, { hidden: 16, lr: 0.02, seed: 1 });
    const loss = toyCrossEntropy.create({}, ctx) as ClassifierLoss;
    const losses: number[] = [];
    const step = (i: number) => {
      const b = gatherBatch(data, batchIndices(1, i, data.n, 32));
      losses.push(trainer.step(b.x, b.onehot, b.labels, loss).loss);
      tf.dispose([b.x, b.onehot]);
    };
    await assertTensorCountFlat(step, { warmup: 2, steps: 5, label: 'toy trainer step' });
    for (let i = 7; i < 100; i++) step(i);
    const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(last < 0.6 * first, `loss did not drop: ${first} -> ${last}`);
    trainer.dispose();
  });

  it('blobs and batches are seeded: same seed same data, other seed other data', () => {
    const a = makeBlobs(5, { n: 16, dims: 4, classes: 3, spread: 1, noise: 1, split: 'train' });
    const b = makeBlobs(5, { n: 16, dims: 4, classes: 3, spread: 1, noise: 1, split: 'train' });
    const c = makeBlobs(6, { n: 16, dims: 4, classes: 3, spread: 1, noise: 1, split: 'train' });
    assert.deepEqual(a.x, b.x);
    assert.notDeepEqual(a.x, c.x);
    assert.deepEqual(batchIndices(5, 10, 100, 8), batchIndices(5, 10, 100, 8));
    assert.notDeepEqual(batchIndices(5, 10, 100, 8), batchIndices(5, 11, 100, 8));
  });
});

