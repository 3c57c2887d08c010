import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../../framework/engine/backend.js';
import { Optimizer, clipByGlobalNorm } from '../../../framework/engine/optim.js';
import { Rng } from '../../../framework/engine/rng.js';
import { loadCheckpoint, restoreWeights, saveCheckpoint } from '../../../framework/engine/checkpoint.js';

/** A small seeded training problem whose data order comes from an Rng stream (so RNG state matters). */
function setup(seed: number, dataRng?: Rng) {
  const data = dataRng ?? Rng.derive(seed, 'data');
  const X = Rng.derive(seed, 'x').fillNormal(new Float32Array(64 * 5)) as Float32Array;
  const Y = Rng.derive(seed, 'y').fillNormal(new Float32Array(64 * 2)) as Float32Array;
  const init = Rng.derive(seed, 'init');
  const vars = {
    w: tf.variable(tf.tensor2d(init.fillNormal(new Float32Array(10), 0, 0.5) as Float32Array, [5, 2]), true),
    b: tf.variable(tf.zeros([2]), true),
  };
  const opt = new Optimizer(vars, { type: 'adamw', lr: 0.05, weight_decay: 0.05, schedule: { type: 'poly', max_steps: 20, power: 0.9, warmup: { iters: 3, ratio: 0.1 } }, groups: [{ params: ['b'], weight_decay: 0 }] });
  const step = () => {
    const idx = Array.from({ length: 8 }, () => data.int(0, 63));
    const x = tf.tensor2d(idx.flatMap((i) => [...X.subarray(i * 5, i * 5 + 5)]), [8, 5]);
    const y = tf.tensor2d(idx.flatMap((i) => [...Y.subarray(i * 2, i * 2 + 2)]), [8, 2]);
    const res = tf.variableGrads(() => tf.mean(tf.square(tf.sub(tf.add(tf.matMul(x, vars.w), vars.b), y))) as tf.Scalar, [vars.w, vars.b]);
    const clipped = clipByGlobalNorm({ w: res.grads[vars.w.name], b: res.grads[vars.b.name] }, 0.5);
    opt.apply(clipped.grads);
    const loss = res.value.dataSync()[0];
    tf.dispose([x, y, res.value, ...Object.values(res.grads), ...Object.values(clipped.grads)]);
    return loss;
  };
  return { vars, opt, data, step, dispose: () => (opt.dispose(), tf.dispose(Object.values(vars))) };
}

test('resuming from a checkpoint gives exactly the losses of never stopping', async () => {
  await useBackend('cpu');
  const a = setup(3);
  const straight = Array.from({ length: 12 }, () => a.step());
  a.dispose();

  const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
  const b = setup(3);
  const first = Array.from({ length: 5 }, () => b.step());
  saveCheckpoint(join(dir, 'step5'), { weights: b.vars, optimizer: b.opt.getState(), schedule: { step: b.opt.step }, rng: { data: { keys: [...b.data.keys], state: b.data.getState() } }, data: { epoch: 0, index: 5 } });
  b.dispose();

  // a fresh process: fresh weights, optimiser and data stream; everything that moved comes from the checkpoint
  const ck = loadCheckpoint(join(dir, 'step5'));
  const c = setup(3, Rng.restore(ck.rng!.data.keys, ck.rng!.data.state));
  restoreWeights(c.vars, ck.weights, join(dir, 'step5'));
  c.opt.setState(ck.optimizer!);
  assert.deepEqual(ck.data, { epoch: 0, index: 5 });
  assert.equal(ck.schedule!.step, 5);
  const rest = Array.from({ length: 7 }, () => c.step());
  c.dispose();
  assert.deepEqual([...first, ...rest], straight, 'bit-identical losses after resuming');
  // and each restored piece matters: without the optimiser state the next loss differs
  const d = setup(3, Rng.restore(ck.rng!.data.keys, ck.rng!.data.state));
  restoreWeights(d.vars, ck.weights, 'ckpt');
  d.step();
  const withoutOptState = d.step();
  d.dispose();
  assert.notEqual(withoutOptState, straight[6]);
});

test('malformed checkpoints get errors naming the file', async () => {
  await useBackend('cpu');
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-bad-'));
  const v = { w: tf.variable(tf.ones([2, 2]), true) };
  const opt = new Optimizer(v, { type: 'sgd', momentum: 0.9 });
  const g = { w: tf.ones([2, 2]) };
  opt.apply(g, 0.1);
  saveCheckpoint(join(dir, 'ok'), { weights: v, optimizer: opt.getState() });
  assert.throws(() => loadCheckpoint(join(dir, 'nope')), /checkpoint .*nope does not exist/);
  const sf = join(dir, 'ok', 'state.json');
  const good = readFileSync(sf, 'utf8');
  writeFileSync(sf, '{not json');
  assert.throws(() => loadCheckpoint(join(dir, 'ok')), /state\.json: not valid JSON/);
  writeFileSync(sf, good);
  const wf = join(dir, 'ok', 'weights.safetensors');
  const bytes = readFileSync(wf);
  writeFileSync(wf, bytes.subarray(0, bytes.length - 4));
  assert.throws(() => loadCheckpoint(join(dir, 'ok')), /weights\.safetensors.*truncated/);
  writeFileSync(wf, bytes);
  rmSync(join(dir, 'ok', 'optimizer.safetensors'));
  assert.throws(() => loadCheckpoint(join(dir, 'ok')), /optimizer\.safetensors: missing/);
  const ck = (() => {
    saveCheckpoint(join(dir, 'ok2'), { weights: v });
    return loadCheckpoint(join(dir, 'ok2'));
  })();
  const other = { w: tf.variable(tf.ones([3, 2]), true), extra: tf.variable(tf.ones([1]), true) };
  assert.throws(() => restoreWeights(other, ck.weights, 'ckpt'), /ckpt: checkpoint weights do not match the model; missing: extra/);
  assert.throws(() => restoreWeights({ w: other.w }, ck.weights, 'ckpt'), /weight w has shape \[2,2\] in the checkpoint but \[3,2\] in the model/);
  opt.dispose();
  tf.dispose([...Object.values(v), ...Object.values(g), ...Object.values(other)]);
});
