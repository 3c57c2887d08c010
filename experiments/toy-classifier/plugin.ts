import * as tf from '@tensorflow/tfjs-core';
import { compileOptionSchema } from '../common/train-step.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { definePlugin, readSafetensors, toFloat32, writeSafetensors, type Experiment, type RunContext } from '../../framework/api.js';
import { batchIndices, makeBlobs, type BlobData } from './data.js';
import type { ClassifierLoss } from './loss.js';
import { MlpTrainer, gatherBatch } from './trainer.js';
import { stepCheckpointName } from '../common/train.js';

/**
 * The quickstart experiment: a small but real training run (2-layer MLP, Adam, seeded
 * synthetic blobs) that exercises the whole run lifecycle: params, per-step metrics, eval
 * metrics, an artifact (confusion matrix), checkpoints and resume, and a pluggable loss.
 */
export const toyClassifier = definePlugin({
  kind: 'experiment',
  name: 'toy-classifier',
  description: 'quickstart: train a 2-layer MLP on seeded synthetic blobs (params, metrics, artifact, checkpoints, resume)',
  docs: 'Trains `dims -> hidden -> classes` with Adam on Gaussian blobs drawn from the run seed. Logs loss/accuracy per step, test metrics every `eval_every` steps, writes `confusion_matrix.csv`, and checkpoints (safetensors, weights + Adam state) every `checkpoint_every` steps and when stopped by a signal. The `loss` option takes any `loss/*` plugin with the toy contract `compute(logits, onehot) -> { loss, dLogits }`.',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      steps: { type: 'integer', minimum: 1, default: 300, description: 'training steps' },
      batch_size: { type: 'integer', minimum: 1, default: 64 },
      hidden: { type: 'integer', minimum: 1, default: 32 },
      lr: { type: 'number', exclusiveMinimum: 0, default: 0.01 },
      dims: { type: 'integer', minimum: 1, default: 8 },
      classes: { type: 'integer', minimum: 2, default: 3 },
      train_size: { type: 'integer', minimum: 1, default: 512 },
      test_size: { type: 'integer', minimum: 1, default: 256 },
      spread: { type: 'number', minimum: 0, default: 1, description: 'std of class centres per coordinate' },
      noise: { type: 'number', exclusiveMinimum: 0, default: 1, description: 'std of samples around their centre' },
      eval_every: { type: 'integer', minimum: 1, default: 50 },
      checkpoint_every: { type: 'integer', minimum: 1, default: 100 },
      compile: compileOptionSchema(),
      loss: {
        type: 'object',
        required: ['type'],
        properties: { type: { type: 'string', pattern: '^loss/' } },
        default: { type: 'loss/toy-cross-entropy' },
        description: 'loss plugin (contract: compute(logits, onehot) -> { loss, dLogits })',
      },
    },
  } as const,
  async create(o, ctx): Promise<Experiment> {
    const loss = await ctx.build<ClassifierLoss>(o.loss as { type: string }, { expectKind: 'loss', path: `${ctx.path}.loss` });
    if (!loss || typeof loss.compute !== 'function') throw new Error(`${ctx.path}.loss: ${o.loss.type} does not build a classifier loss (compute(logits, onehot))`);
    return { run: (rc) => train(o, loss, rc) };
  },
});

type Options = Parameters<typeof toyClassifier.create>[0];

async function train(o: Options, loss: ClassifierLoss, rc: RunContext): Promise<Record<string, number>> {
  const common = { dims: o.dims, classes: o.classes, spread: o.spread, noise: o.noise };
  const trainSet = makeBlobs(rc.seed, { ...common, n: o.train_size, split: 'train' });
  const testSet = makeBlobs(rc.seed, { ...common, n: o.test_size, split: 'test' });
  const trainer = new MlpTrainer(o.dims, o.classes, { hidden: o.hidden, lr: o.lr, seed: rc.seed, compile: o.compile, log: (l) => rc.log.info(l) });
  try {
    let start = 0;
    if (rc.resume?.checkpointDir) {
      start = loadCheckpoint(trainer, rc.resume.checkpointDir);
      rc.log.info(`resuming from ${rc.resume.checkpointDir} at step ${start}`);
    } else {
      rc.logParams({ data: { train_size: o.train_size, test_size: o.test_size, dims: o.dims, classes: o.classes }, model: { parameters: (o.dims + 1) * o.hidden + (o.hidden + 1) * o.classes } });
    }
    const save = (step: number) => rc.saveCheckpoint(stepCheckpointName(step), (dir) => {
      writeSafetensors(join(dir, 'model.safetensors'), Object.fromEntries(Object.entries(trainer.state()).map(([k, v]) => [k, { dtype: 'F32' as const, ...v }])), { step: String(step) });
    });
    const bar = rc.progress('train', o.steps);
    if (start > 0) bar.update(start);
    let step = start;
    while (step < o.steps) {
      if (rc.signal.aborted) {
        await save(step); // stopped by a signal: keep the work done so far for --resume
        bar.done('stopped');
        return {};
      }
      const b = gatherBatch(trainSet, batchIndices(rc.seed, step, trainSet.n, o.batch_size));
      const r = trainer.step(b.x, b.onehot, b.labels, loss);
      tf.dispose([b.x, b.onehot]);
      step++;
      // the compiled step settles within its first few calls (module comment of engine/compile.ts)
      if (step - start === 4) rc.setTags(trainer.compileTags());
      rc.logMetrics(step, { loss: r.loss, accuracy: r.accuracy });
      bar.tick(1, `loss ${r.loss.toFixed(4)}`);
      if (step % o.eval_every === 0 || step === o.steps) {
        const ev = evaluate(trainer, testSet, loss);
        rc.logMetrics(step, { test_loss: ev.loss, test_accuracy: ev.accuracy });
      }
      if (step % o.checkpoint_every === 0 && step < o.steps) await save(step);
      // let signals and timers run between steps
      if (step % 10 === 0) await new Promise((r2) => setImmediate(r2));
    }
    bar.done();
    rc.setTags(trainer.compileTags());
    await save(step);
    const ev = evaluate(trainer, testSet, loss);
    await rc.logArtifact('confusion_matrix.csv', confusionCsv(ev.confusion));
    return { test_loss: ev.loss, test_accuracy: ev.accuracy };
  } finally {
    trainer.dispose();
  }
}

function evaluate(trainer: MlpTrainer, data: BlobData, loss: ClassifierLoss): { loss: number; accuracy: number; confusion: number[][] } {
  const all = new Int32Array(data.n).map((_, i) => i);
  const b = gatherBatch(data, all);
  const [l, pred] = tf.tidy(() => {
    const logits = trainer.logits(b.x);
    return [loss.compute(logits, b.onehot).loss, tf.argMax(logits, 1)];
  });
  const lossV = l.dataSync()[0];
  const p = pred.dataSync();
  tf.dispose([l, pred, b.x, b.onehot]);
  const confusion = Array.from({ length: data.classes }, () => new Array<number>(data.classes).fill(0));
  let correct = 0;
  for (let i = 0; i < data.n; i++) {
    confusion[data.y[i]][p[i]]++;
    if (p[i] === data.y[i]) correct++;
  }
  return { loss: lossV, accuracy: correct / data.n, confusion };
}

/** rows: true class, columns: predicted class */
export function confusionCsv(m: number[][]): string {
  const head = ['true\\pred', ...m.map((_, j) => `c${j}`)].join(',');
  return [head, ...m.map((row, i) => [`c${i}`, ...row].join(','))].join('\n') + '\n';
}

function loadCheckpoint(trainer: MlpTrainer, dir: string): number {
  const file = join(dir, 'model.safetensors');
  if (!existsSync(file)) throw new Error(`checkpoint ${dir} has no model.safetensors`);
  const st = readSafetensors(file);
  const state: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [k, e] of st.tensors) state[k] = { shape: e.shape, data: toFloat32(e) };
  const step = Number(st.metadata.step);
  if (!Number.isInteger(step)) throw new Error(`checkpoint ${file}: no step in its metadata`);
  trainer.load(state, step, file);
  return step;
}
