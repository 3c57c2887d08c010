import './_onednn-off.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../../../framework/engine/backend.js';
import { compileStep, xlaRefusal, type CompileMode } from '../../../framework/engine/compile.js';
import { MlpTrainer, gatherBatch } from '../../../experiments/toy-classifier/trainer.js';
import { batchIndices, makeBlobs } from '../../../experiments/toy-classifier/data.js';
import { toyCrossEntropy, type ClassifierLoss } from '../../../experiments/toy-classifier/loss.js';
import { compiledSkipReason, normalData, relErr, tf } from './_native.js';

/**
 * `compile: xla` (framework/engine/compile.ts): the recorded step's registered function runs
 * through XLA. XLA fuses and may reorder reductions, so it matches eager to rounding, not to
 * the bit: the bound here is 1e-4 relative over 20 steps (measured: a few 1e-7). A function
 * XLA refuses runs as the plain compiled function, says why once and tags it.
 */
const STEPS = 20;
const skip = compiledSkipReason();

function toyRun(mode: CompileMode, log: string[]) {
  const loss = (toyCrossEntropy.create({}, undefined as never) as ClassifierLoss);
  const data = makeBlobs(3, { dims: 8, classes: 3, spread: 1, noise: 1, n: 256, split: 'train' });
  const tr = new MlpTrainer(8, 3, { hidden: 32, lr: 0.01, seed: 3, compile: mode, log: (l) => log.push(l) });
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++) {
    const b = gatherBatch(data, batchIndices(3, s, data.n, 64));
    losses.push(tr.step(b.x, b.onehot, b.labels, loss).loss);
    tf.dispose([b.x, b.onehot]);
  }
  const weights = Object.values(tr.state()).flatMap((v) => Array.from(v.data as Float32Array));
  const tags = tr.compileTags();
  tr.dispose();
  return { losses, weights, tags };
}

/** Six SGD steps of `step` at learning rate 0.5: the losses. */
function sgdLosses(step: { call(inputs: { lr: tf.Tensor }): { loss?: tf.Tensor } }): number[] {
  const lr = tf.scalar(0.5);
  const losses: number[] = [];
  for (let i = 0; i < 6; i++) {
    const { loss } = step.call({ lr });
    losses.push(loss!.dataSync()[0]!);
    loss!.dispose();
  }
  lr.dispose();
  return losses;
}

describe('compiled steps through XLA (native backend)', { skip }, () => {
  it('the toy classifier trains through XLA as it does eagerly (1e-4 relative over 20 steps)', async () => {
    await useBackend('tensorflow');
    const eager = toyRun('off', []);
    const log: string[] = [];
    const xla = toyRun('xla', log);
    assert.equal(xla.tags['rass.compile.toy-classifier'], 'compiled', JSON.stringify(xla.tags));
    assert.equal(xla.tags['rass.compile.toy-classifier.xla'], 'on', JSON.stringify(xla.tags));
    assert.ok(log.some((l) => /runs through XLA \(its first call/.test(l)), log.join('\n'));
    const dl = relErr(Float32Array.from(xla.losses), Float32Array.from(eager.losses));
    const dw = relErr(Float32Array.from(xla.weights), Float32Array.from(eager.weights));
    assert.ok(dl < 1e-4 && dw < 1e-4, `losses ${dl}, weights ${dw}`);
    // the losses moved: a step that did nothing would match trivially
    assert.ok(eager.losses[STEPS - 1]! < eager.losses[0]! * 0.9, `${eager.losses[0]} -> ${eager.losses[STEPS - 1]}`);
  });

  it('a step with an op XLA has no kernel for (ResizeNearestNeighborGrad, from a 3x upsampling) runs as the plain compiled function, says why once and tags it', async () => {
    await useBackend('tensorflow');
    const w = tf.variable(tf.tensor4d(normalData('xla-w', 2 * 4 * 4 * 3), [2, 4, 4, 3]));
    const target = tf.tensor4d(normalData('xla-t', 2 * 12 * 12 * 3), [2, 12, 12, 3]);
    const lossOf = (v: tf.Tensor4D) => tf.mean(tf.square(tf.sub(tf.image.resizeNearestNeighbor(v, [12, 12]), target))) as tf.Scalar;
    // one SGD step: the gradient of a 3x nearest-neighbour upsampling is ResizeNearestNeighborGrad
    // (2x, 4x and 8x take a Reshape + Sum that XLA compiles: the next test)
    const fn = ({ lr }: { lr: tf.Tensor }) => {
      const { value, grads } = tf.variableGrads(() => lossOf(w as unknown as tf.Tensor4D), [w]);
      w.assign(tf.sub(w, tf.mul(grads[w.name]!, lr)) as tf.Tensor4D);
      return { loss: value };
    };
    const log: string[] = [];
    const step = compileStep(fn, { mode: 'xla', name: 'nn', log: (l) => log.push(l) });
    const losses = sgdLosses(step);
    const s = step.status();
    assert.equal(s.state, 'compiled');
    assert.ok(s.compiledCalls >= 2, JSON.stringify(s));
    assert.equal(s.xla, 'refused');
    assert.match(s.xlaReason ?? '', /ResizeNearestNeighborGrad/);
    assert.match(step.tags()['rass.compile.nn.xla'] ?? '', /^refused: .*ResizeNearestNeighborGrad/);
    assert.equal(log.filter((l) => /XLA cannot compile/.test(l)).length, 1, log.join('\n'));
    // it still trained: the loss falls every step
    for (let i = 1; i < losses.length; i++) assert.ok(losses[i]! < losses[i - 1]!, losses.join(' '));
    step.dispose();
    tf.dispose([w, target]);
  });

  it('a 2x nearest-neighbour upsampling trains through XLA (its gradient is a block sum XLA compiles), as it does eagerly', async () => {
    await useBackend('tensorflow');
    const run = (mode: CompileMode) => {
      const w = tf.variable(tf.tensor4d(normalData('xla2-w', 2 * 4 * 4 * 3), [2, 4, 4, 3]));
      const target = tf.tensor4d(normalData('xla2-t', 2 * 8 * 8 * 3), [2, 8, 8, 3]);
      const step = compileStep(({ lr }: { lr: tf.Tensor }) => {
        const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(tf.image.resizeNearestNeighbor(w as unknown as tf.Tensor4D, [8, 8]), target))) as tf.Scalar, [w]);
        w.assign(tf.sub(w, tf.mul(grads[w.name]!, lr)) as tf.Tensor4D);
        return { loss: value };
      }, { mode, name: 'nn2', log: () => {} });
      const out = { losses: sgdLosses(step), weights: w.dataSync().slice() as Float32Array, status: step.status() };
      step.dispose();
      tf.dispose([w, target]);
      return out;
    };
    const eager = run('off');
    const xla = run('xla');
    assert.equal(xla.status.state, 'compiled');
    assert.equal(xla.status.xla, 'on', xla.status.xlaReason);
    assert.ok(relErr(Float32Array.from(xla.losses), Float32Array.from(eager.losses)) < 1e-5 && relErr(xla.weights, eager.weights) < 1e-5);
    assert.ok(eager.losses[5]! < eager.losses[0]!, eager.losses.join(' '));
  });

  it('xlaRefusal keeps the reason of the binding\'s error text, without the graph stack', () => {
    const e = new Error("Invalid TF_Status: 3\nMessage: Detected unsupported operations when trying to compile graph f[_XlaMustCompile=true] on XLA_CPU_JIT: Foo (No registered 'Foo' OpKernel for XLA_CPU_JIT devices compatible with node {{node n91}}){{node n91}}\nThe op is created at:\ndummy");
    assert.equal(xlaRefusal(e), "Detected unsupported operations when trying to compile graph f[_XlaMustCompile=true] on XLA_CPU_JIT: Foo (No registered 'Foo' OpKernel for XLA_CPU_JIT devices compatible with node )");
    assert.equal(xlaRefusal(new Error('plain')), 'plain');
  });
});
