import './_onednn-off.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../../../framework/engine/backend.js';
import { compileStep, hostPlan, pickScalars, scalarInputs, type CompileMode, type Planner } from '../../../framework/engine/compile.js';
import { Optimizer, clipByGlobalNorm } from '../../../framework/engine/optim.js';
import { TrainStep } from '../../../experiments/common/train-step.js';
import { AutoencoderKL } from '../../../registry/backbones/sd/vae.js';
import { Rng } from '../../../framework/engine/rng.js';
import { MlpTrainer, gatherBatch } from '../../../experiments/toy-classifier/trainer.js';
import { batchIndices, makeBlobs } from '../../../experiments/toy-classifier/data.js';
import { toyCrossEntropy, type ClassifierLoss } from '../../../experiments/toy-classifier/loss.js';
import { LoraModel } from '../../../registry/adapters/lora/lora.js';
import { TINY_UNET, TINY_VAE } from '../../../registry/backbones/sd/presets.js';
import { UNet2DConditionModel } from '../../../registry/backbones/sd/unet.js';
import { compiledSkipReason, normalData, relErr, tf } from './_native.js';

/**
 * Compiled training steps (framework/engine/compile.ts, issue #21): the same run with
 * `compile: auto` (recorded, then one registered TensorFlow function per step) and with
 * `compile: off` (eager tfjs) gives the same losses and weights within 1e-5 relative over 20
 * steps; the compiled calls really run compiled; memory stays flat; and the fallbacks
 * (host reads, values that change in JS, non-native backends) run eagerly and say why.
 */
const TOL = 1e-5;
const STEPS = 20;
const skip = compiledSkipReason();
const quiet = () => {};

function binding(): { getNumOfTensors(): number } {
  return (tf.backend() as unknown as { binding: { getNumOfTensors(): number } }).binding;
}

function maxRel(a: number[], b: number[]): number {
  return relErr(Float32Array.from(a), Float32Array.from(b));
}

/**
 * The toy classifier's trainer for steps [from, to); losses, final weights and the compile
 * status. `resume`: start from that checkpoint state (as the experiment's resume does).
 */
function toyRun(mode: CompileMode, to = STEPS, resume?: { state: ReturnType<MlpTrainer['state']>; from: number }) {
  const loss = (toyCrossEntropy.create({}, undefined as never) as ClassifierLoss);
  const data = makeBlobs(3, { dims: 8, classes: 3, spread: 1, noise: 1, n: 256, split: 'train' });
  const tr = new MlpTrainer(8, 3, { hidden: 32, lr: 0.01, seed: 3, compile: mode, log: quiet });
  if (resume) tr.load(resume.state, resume.from, 'test');
  const losses: number[] = [];
  for (let s = resume?.from ?? 0; s < to; s++) {
    const b = gatherBatch(data, batchIndices(3, s, data.n, 64));
    losses.push(tr.step(b.x, b.onehot, b.labels, loss).loss);
    tf.dispose([b.x, b.onehot]);
  }
  const state = tr.state();
  const weights = Object.fromEntries(Object.entries(state).map(([k, v]) => [k, v.data]));
  const tags = tr.compileTags();
  tr.dispose();
  return { losses, weights, tags, state };
}

describe('compiled training steps (native backend)', { skip }, () => {
  it('toy classifier: compiled and eager losses, weights and Adam state agree within 1e-5 over 20 steps', async () => {
    await useBackend('tensorflow');
    const eager = toyRun('off');
    const compiled = toyRun('auto');
    assert.equal(eager.tags['rass.compile.toy-classifier'], 'eager');
    assert.equal(compiled.tags['rass.compile.toy-classifier'], 'compiled', JSON.stringify(compiled.tags));
    // the loss must actually fall (a step that updated nothing would agree trivially)
    assert.ok(eager.losses[STEPS - 1]! < 0.8 * eager.losses[0]!, `eager loss ${eager.losses[0]} -> ${eager.losses[STEPS - 1]}`);
    assert.ok(maxRel(compiled.losses, eager.losses) <= TOL, `losses ${compiled.losses} vs ${eager.losses}`);
    for (const [k, w] of Object.entries(eager.weights)) {
      const e = relErr(compiled.weights[k]!, w);
      assert.ok(e <= TOL, `${k}: relative error ${e}`);
    }
  });

  it('checkpoints cross over: a compiled run resumed eagerly and an eager run resumed compiled continue like never stopping', async () => {
    await useBackend('tensorflow');
    const whole = toyRun('auto');
    for (const [first, second] of [['auto', 'off'], ['off', 'auto']] as const) {
      const head = toyRun(first, STEPS / 2);
      const tail = toyRun(second, STEPS, { state: head.state, from: STEPS / 2 });
      const label = `${first} then ${second}`;
      assert.ok(maxRel(tail.losses, whole.losses.slice(STEPS / 2)) <= TOL, `${label}: losses ${tail.losses} vs ${whole.losses.slice(STEPS / 2)}`);
      for (const [k, w] of Object.entries(whole.weights)) assert.ok(relErr(tail.weights[k]!, w) <= TOL, `${label}: ${k} relative error ${relErr(tail.weights[k]!, w)}`);
      if (second === 'auto') assert.equal(tail.tags['rass.compile.toy-classifier'], 'compiled');
    }
  });

  it('autodiff + engine Optimizer (SGD momentum, cosine schedule as inputs), new shapes record again', async () => {
    await useBackend('tensorflow');
    const run = (mode: CompileMode) => {
      const w = tf.variable(tf.tensor2d(normalData('opt/w', 6 * 4, 0.5), [6, 4]), true, `compiled-opt-w-${mode}`);
      const b = tf.variable(tf.zeros([4]), true, `compiled-opt-b-${mode}`);
      const opt = new Optimizer({ w, b }, { type: 'sgd', lr: 0.1, momentum: 0.9, weight_decay: 1e-3, schedule: { type: 'cosine', max_steps: 2 * STEPS } });
      const step = compileStep(
        (i: Record<string, tf.Tensor>) => {
          const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(tf.add(tf.matMul(i.x as tf.Tensor2D, w), b), i.y!))) as tf.Scalar, [w, b]);
          opt.applyHyper({ w: grads[w.name]!, b: grads[b.name]! }, pickScalars(i));
          return { loss: value };
        },
        { mode, name: 'opt', log: quiet },
      );
      const losses: number[] = [];
      for (let s = 0; s < STEPS; s++) {
        // alternate two batch sizes: two signatures, each recorded and compiled on its own
        const n = s % 2 ? 5 : 3;
        const x = tf.tensor2d(normalData(`opt/x${s}`, n * 6), [n, 6]);
        const y = tf.tensor2d(normalData(`opt/y${s}`, n * 4), [n, 4]);
        const h = scalarInputs(opt.hyper());
        const { loss } = step.call({ x, y, ...h });
        opt.advance();
        losses.push(loss!.dataSync()[0]!);
        tf.dispose([x, y, loss!, ...Object.values(h)]);
      }
      const out = { losses, w: w.dataSync() as Float32Array, status: step.status() };
      step.dispose();
      opt.dispose();
      tf.dispose([w, b]);
      return out;
    };
    const eager = run('off');
    const compiled = run('auto');
    assert.equal(compiled.status.signatures, 2);
    // per signature: 2 agreeing recordings (3 for the first, whose first call creates the momentum slots)
    assert.ok(compiled.status.compiledCalls >= STEPS - 6, JSON.stringify(compiled.status));
    assert.ok(maxRel(compiled.losses, eager.losses) <= TOL, `losses ${compiled.losses} vs ${eager.losses}`);
    assert.ok(relErr(compiled.w, eager.w) <= TOL, `w relative error ${relErr(compiled.w, eager.w)}`);
  });

  it('tiny UNet LoRA step (AdamW): compiled and eager losses and LoRA weights agree within 1e-5 over 20 steps', async () => {
    await useBackend('tensorflow');
    const run = (mode: CompileMode) => {
      const unet = new UNet2DConditionModel(TINY_UNET, 0);
      const lora = new LoraModel(unet.store, 0);
      const adapter = lora.add('t', { r: 4, alpha: 4, targetModules: ['to_q', 'to_k', 'to_v', 'to_out.0'] });
      const vars: Record<string, tf.Variable> = {};
      for (const [n, l] of adapter.layers) Object.assign(vars, { [`${n}.A`]: l.A, [`${n}.B`]: l.B });
      const opt = new Optimizer(vars, { type: 'adamw', lr: 1e-2, weight_decay: 1e-2, schedule: { type: 'constant' } });
      const byVar = new Map(Object.entries(vars).map(([k, v]) => [v.name, k]));
      const step = compileStep(
        (i: Record<string, tf.Tensor>) => {
          const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(unet.run(i.x as tf.Tensor4D, 999, i.ctx as tf.Tensor3D), i.x!))) as tf.Scalar, Object.values(vars));
          opt.applyHyper(Object.fromEntries(Object.entries(grads).map(([n, g]) => [byVar.get(n)!, g])), pickScalars(i));
          return { loss: value };
        },
        { mode, name: 'unet-lora', log: quiet },
      );
      const r = Rng.derive(1, 'compiled-unet');
      const c = TINY_UNET.in_channels;
      const losses: number[] = [];
      for (let s = 0; s < STEPS; s++) {
        const x = tf.tensor4d(r.fillNormal(new Float32Array(2 * 8 * 8 * c)) as Float32Array, [2, 8, 8, c]);
        const ctx = tf.tensor3d(r.fillNormal(new Float32Array(2 * 4 * TINY_UNET.cross_attention_dim)) as Float32Array, [2, 4, TINY_UNET.cross_attention_dim]);
        const h = scalarInputs(opt.hyper());
        const { loss } = step.call({ x, ctx, ...h });
        opt.advance();
        losses.push(loss!.dataSync()[0]!);
        tf.dispose([x, ctx, loss!, ...Object.values(h)]);
      }
      const weights = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v.dataSync() as Float32Array]));
      const out = { losses, weights, status: step.status() };
      step.dispose();
      opt.dispose();
      unet.store.dispose();
      return out;
    };
    const eager = run('off');
    const compiled = run('auto');
    assert.equal(compiled.status.state, 'compiled', JSON.stringify(compiled.status));
    assert.ok(compiled.status.compiledCalls >= STEPS - 3, JSON.stringify(compiled.status));
    assert.ok(maxRel(compiled.losses, eager.losses) <= TOL, `losses ${compiled.losses} vs ${eager.losses}`);
    let moved = 0;
    for (const [k, w] of Object.entries(eager.weights)) {
      const e = relErr(compiled.weights[k]!, w);
      assert.ok(e <= TOL, `${k}: relative error ${e}`);
      if (k.endsWith('.B')) moved = Math.max(moved, Math.max(...Array.from(w, Math.abs)));
    }
    assert.ok(moved > 1e-4, `LoRA B weights did not move (max |B| ${moved})`);
  });

  it('TrainStep (tiny VAE, in-graph clipping, AdamW with warmup + cosine as inputs): compiled = eager = the host-read reference over 20 steps', async () => {
    await useBackend('tensorflow');
    // clip at 0.05 so clipping is active on most steps: the in-graph coefficient must match
    const MAX_NORM = 0.05;
    const schedule = { type: 'cosine' as const, max_steps: STEPS, min_lr: 1e-4, warmup: { iters: 5, ratio: 0.01 } };
    const batches = Array.from({ length: STEPS }, (_, s) => {
      const r = Rng.derive(3, 'train-step-vae', s);
      return { x: r.fillNormal(new Float32Array(2 * 16 * 16 * 3)) as Float32Array, noise: r.fillNormal(new Float32Array(2 * 8 * 8 * 4)) as Float32Array };
    });
    const lossOf = (vae: AutoencoderKL, x: tf.Tensor4D, noise: tf.Tensor) => {
      const { mean, logvar } = vae.runEncode(x);
      const y = vae.runDecode(tf.add(mean, tf.mul(tf.exp(tf.mul(logvar, 0.5)), noise)) as tf.Tensor4D);
      return tf.mean(tf.abs(tf.sub(y, x))) as tf.Scalar;
    };
    const run = (mode: CompileMode | 'reference') => {
      // 4 channels per group: with one channel per group, a conv bias right before a GroupNorm
      // has an analytically zero gradient, and Adam turns its float noise into lr-sized steps
      const vae = new AutoencoderKL({ ...TINY_VAE, norm_num_groups: 8 }, 0);
      const vars: Record<string, tf.Variable> = {};
      for (const [k, p] of vae.store.params) vars[k] = p.variable;
      const opt = new Optimizer(vars, { type: 'adamw', lr: 1e-3, weight_decay: 1e-2, schedule });
      const losses: number[] = [];
      const norms: number[] = [];
      const ts = mode === 'reference' ? null : new TrainStep(vars, opt, MAX_NORM, ({ x, noise }) => ({ loss: lossOf(vae, x as tf.Tensor4D, noise!), terms: { twice: tf.mul(lossOf(vae, x as tf.Tensor4D, noise!), 2) as tf.Scalar } }), { mode, name: `vae-${mode}`, log: quiet });
      for (const b of batches) {
        const x = tf.tensor4d(b.x, [2, 16, 16, 3]);
        const noise = tf.tensor4d(b.noise, [2, 8, 8, 4]);
        if (ts) {
          const r = ts.run({ x, noise });
          assert.ok(Math.abs(r.terms.twice! - 2 * r.loss) <= 1e-5 * r.loss, `term ${r.terms.twice} vs loss ${r.loss}`);
          losses.push(r.loss);
          norms.push(r.gradNorm);
        } else {
          // the pre-TrainStep path: host-read norm, Optimizer.apply
          const byVar = new Map(Object.entries(vars).map(([k, v]) => [v.name, k]));
          const { value, grads } = tf.variableGrads(() => lossOf(vae, x, noise), Object.values(vars));
          const clipped = clipByGlobalNorm(Object.fromEntries(Object.entries(grads).map(([n, g]) => [byVar.get(n)!, g])), MAX_NORM);
          tf.tidy(() => opt.apply(clipped.grads));
          losses.push(value.dataSync()[0]!);
          norms.push(clipped.norm);
          tf.dispose([value, ...Object.values(grads), ...Object.values(clipped.grads)]);
        }
        tf.dispose([x, noise]);
      }
      const weights = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v.dataSync() as Float32Array]));
      const out = { losses, norms, weights, status: ts?.tags() ?? {} };
      ts?.dispose();
      opt.dispose();
      vae.store.dispose();
      return out;
    };
    const before = tf.memory().numTensors;
    const reference = run('reference');
    const eager = run('off');
    const compiled = run('auto');
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    assert.equal(compiled.status['rass.compile.vae-auto'], 'compiled', JSON.stringify(compiled.status));
    assert.ok(reference.norms.filter((n) => n > MAX_NORM).length >= STEPS / 2, `clipping active on few steps: ${reference.norms}`);
    for (const [label, got] of [['eager', eager], ['compiled', compiled]] as const) {
      assert.ok(maxRel(got.losses, reference.losses) <= TOL, `${label} losses ${got.losses} vs ${reference.losses}`);
      assert.ok(maxRel(got.norms, reference.norms) <= TOL, `${label} norms ${got.norms} vs ${reference.norms}`);
      for (const [k, w] of Object.entries(reference.weights)) {
        // the key bias has an analytically zero gradient (softmax ignores a shift shared by all
        // keys): Adam turns its float noise into lr-sized steps, so it is compared in absolute terms
        const tol = k.endsWith('to_k.bias') ? 1e-3 / Math.max(...Array.from(w, Math.abs), 1e-3) : TOL;
        assert.ok(relErr(got.weights[k]!, w) <= tol, `${label} ${k}: relative error ${relErr(got.weights[k]!, w)}`);
      }
    }
  });

  it('the status and the compile line give the step\'s convolution work: forward + filter gradient, analytically', async () => {
    await useBackend('tensorflow');
    // conv 3x3, 4 -> 8 channels over 2x8x8: 2*(2*8*8*8)*(3*3*4) FLOPs forward, as many for the
    // filter's gradient; the input is not a variable, so its gradient is never computed
    const w = tf.variable(tf.tensor4d(normalData('flops-w', 3 * 3 * 4 * 8), [3, 3, 4, 8]));
    const x = tf.tensor4d(normalData('flops-x', 2 * 8 * 8 * 4), [2, 8, 8, 4]);
    const log: string[] = [];
    const step = compileStep(({ x: xi }: { x: tf.Tensor4D }) => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.conv2d(xi, w as tf.Tensor4D, 1, 'same')), [w]);
      w.assign(tf.sub(w, tf.mul(grads[w.name]!, 1e-3)));
      return { loss: value };
    }, { name: 'flops', log: (l) => log.push(l) });
    for (let i = 0; i < 3; i++) tf.dispose(Object.values(step.call({ x })));
    const s = step.status();
    assert.equal(s.state, 'compiled', s.reason);
    assert.equal(s.flops, 2 * (2 * (2 * 8 * 8 * 8) * (3 * 3 * 4)));
    assert.ok(log.some((l) => l.includes('0.000147 GFLOP in convolutions and matrix products')), log.join('\n'));
    step.dispose();
    tf.dispose([w, x]);
  });

  it('memory: the tfjs tensor count and the binding handle count stay flat over 1,000 compiled steps', async () => {
    await useBackend('tensorflow');
    const loss = (toyCrossEntropy.create({}, undefined as never) as ClassifierLoss);
    const data = makeBlobs(4, { dims: 8, classes: 3, spread: 1, noise: 1, n: 256, split: 'train' });
    const tr = new MlpTrainer(8, 3, { hidden: 16, lr: 0.01, seed: 4, compile: 'auto', log: quiet });
    const b = gatherBatch(data, batchIndices(4, 0, data.n, 32));
    for (let s = 0; s < 5; s++) tr.step(b.x, b.onehot, b.labels, loss);
    assert.equal(tr.compileTags()['rass.compile.toy-classifier'], 'compiled');
    const tensors = tf.memory().numTensors;
    const handles = binding().getNumOfTensors();
    const rss = process.memoryUsage().rss;
    for (let s = 0; s < 1000; s++) tr.step(b.x, b.onehot, b.labels, loss);
    assert.equal(tf.memory().numTensors, tensors, 'tfjs tensors leaked');
    assert.equal(binding().getNumOfTensors(), handles, 'TensorFlow handles leaked');
    // RSS: allocator noise only (a leak of one 32x16 gradient per step alone would be 2 MB)
    const grown = (process.memoryUsage().rss - rss) / 2 ** 20;
    assert.ok(grown < 32, `RSS grew ${grown.toFixed(1)} MiB over 1,000 steps`);
    tf.dispose([b.x, b.onehot]);
    tr.dispose();
  });

  it('a step with a host plan (hostPlan) compiles into two functions split there: compiled = eager over 20 steps, the planner runs every step, nothing leaks', async () => {
    await useBackend('tensorflow');
    // forward (early): h = relu(x W1), logits = h W2; the planner reads the logits on the host
    // and picks each row's target class (its current runner-up, a data-dependent host decision)
    // and a row weight; the rest (late): weighted softmax cross-entropy, gradients, SGD
    const run = (mode: CompileMode) => {
      const r = Rng.derive(11, "split-test");
      const w1 = tf.variable(tf.tensor2d(r.fillNormal(new Float32Array(6 * 16), 0, 0.4) as Float32Array, [6, 16]), true, `split-w1-${mode}`);
      const w2 = tf.variable(tf.tensor2d(r.fillNormal(new Float32Array(16 * 5), 0, 0.4) as Float32Array, [16, 5]), true, `split-w2-${mode}`);
      let planned = 0;
      const planner: Planner = ({ logits }) => {
        planned++;
        const v = logits!.dataSync();
        const onehot = new Float32Array(v.length);
        const weight = new Float32Array(v.length / 5);
        for (let i = 0; i < weight.length; i++) {
          const row = Array.from(v.subarray(i * 5, i * 5 + 5));
          const order = row.map((_, k) => k).sort((a, b) => row[b]! - row[a]! || a - b);
          onehot[i * 5 + order[1]!] = 1;
          weight[i] = 1 + (row[order[0]!]! > 0 ? 1 : 0);
        }
        return { onehot: tf.tensor2d(onehot, [weight.length, 5]), weight: tf.tensor1d(weight) };
      };
      const notes: string[] = [];
      const step = compileStep(({ x }: { x: tf.Tensor }) => {
        const { value, grads } = tf.variableGrads(() => {
          const h = tf.relu(tf.matMul(x as tf.Tensor2D, w1));
          const logits = tf.matMul(h, w2);
          const plan = hostPlan({ logits });
          const ce = tf.neg(tf.sum(tf.mul(plan.onehot!, tf.logSoftmax(logits)), 1));
          return tf.mean(tf.mul(ce, plan.weight!)) as tf.Scalar;
        }, [w1, w2]);
        w1.assign(tf.sub(w1, tf.mul(grads[w1.name]!, 0.1)));
        w2.assign(tf.sub(w2, tf.mul(grads[w2.name]!, 0.1)));
        return { loss: value };
      }, { mode, name: `split-${mode}`, log: (l) => notes.push(l) });
      const losses: number[] = [];
      let tensors = 0;
      let handles = 0;
      for (let i = 0; i < STEPS; i++) {
        if (i === 5) [tensors, handles] = [tf.memory().numTensors, binding().getNumOfTensors()];
        const x = tf.tensor2d(Rng.derive(100 + i, "split-x").fillNormal(new Float32Array(8 * 6)) as Float32Array, [8, 6]);
        const out = step.call({ x }, planner);
        losses.push(out.loss!.dataSync()[0]!);
        tf.dispose([x, out.loss!]);
      }
      const grownTensors = tf.memory().numTensors - tensors;
      const grownHandles = binding().getNumOfTensors() - handles;
      const weights = [...w1.dataSync(), ...w2.dataSync()];
      const status = step.status();
      step.dispose();
      tf.dispose([w1, w2]);
      return { losses, weights, planned, status, notes, grownTensors, grownHandles };
    };
    const eager = run('off');
    const compiled = run('auto');
    assert.equal(compiled.status.state, 'compiled', compiled.notes.join('\n'));
    assert.equal(compiled.status.compiledCalls, STEPS - 2);
    assert.ok(compiled.notes.some((l) => l.includes('compiled in two functions split at the host plan')), compiled.notes.join('\n'));
    assert.equal(compiled.planned, STEPS);
    assert.equal(eager.planned, STEPS);
    assert.ok(maxRel(compiled.losses, eager.losses) <= TOL, `losses ${compiled.losses} vs ${eager.losses}`);
    assert.ok(maxRel(compiled.weights, eager.weights) <= TOL, 'weights');
    // the loss moved: the steps trained (and the planner's choices changed along the way)
    assert.ok(Math.abs(eager.losses[STEPS - 1]! - eager.losses[0]!) > 1e-3, `${eager.losses}`);
    assert.equal(compiled.grownTensors, 0, 'tfjs tensors leaked across split steps');
    assert.equal(compiled.grownHandles, 0, 'TensorFlow handles leaked across split steps');
  });

  it('hostPlan: a plan whose shapes change after compiling runs that call and the rest eagerly, with the same results', async () => {
    await useBackend('tensorflow');
    const run = (mode: CompileMode) => {
      const v = tf.variable(tf.tensor1d([1, 2, 3]), true, `split-shape-v-${mode}`);
      const notes: string[] = [];
      const step = compileStep(({ x }: { x: tf.Tensor }) => {
        const { value, grads } = tf.variableGrads(() => {
          const y = tf.mul(v, x);
          const plan = hostPlan({ y });
          return tf.mul(tf.sum(tf.square(y)), tf.mean(plan.w!)) as tf.Scalar;
        }, [v]);
        v.assign(tf.sub(v, tf.mul(grads[v.name]!, 0.01)));
        return { loss: value };
      }, { mode, name: `shape-${mode}`, log: (l) => notes.push(l) });
      const x = tf.tensor1d([0.5, -1, 2]);
      const losses: number[] = [];
      for (let i = 0; i < 8; i++) {
        // from step 5 the planner returns 3 weights instead of 2
        const out = step.call({ x }, ({ y }) => ({ w: tf.tensor1d(Array.from({ length: i < 5 ? 2 : 3 }, (_, k) => y!.dataSync()[k]! ** 2 + k)) }));
        losses.push(out.loss!.dataSync()[0]!);
        out.loss!.dispose();
      }
      const status = step.status();
      const weights = Array.from(v.dataSync());
      step.dispose();
      tf.dispose([x, v]);
      return { losses, weights, status, notes };
    };
    const eager = run('off');
    const compiled = run('auto');
    // steps 0-1 record, 2-4 run compiled, 5-7 eager
    assert.equal(compiled.status.compiledCalls, 3, JSON.stringify(compiled.status));
    assert.equal(compiled.status.eagerCalls, 5, JSON.stringify(compiled.status));
    assert.ok(compiled.notes.some((l) => /changed shape \(\[2\] -> \[3\]\)/.test(l)), compiled.notes.join('\n'));
    assert.ok(maxRel(compiled.losses, eager.losses) <= TOL, `losses ${compiled.losses} vs ${eager.losses}`);
    assert.ok(maxRel(compiled.weights, eager.weights) <= TOL, 'weights');
  });

  it('hostPlan: twice in a step runs eagerly and says why; a call without a planner is an error', async () => {
    await useBackend('tensorflow');
    const v = tf.variable(tf.tensor1d([1, 2]), false, 'split-twice-v');
    const notes: string[] = [];
    const twice = compileStep(({ x }: { x: tf.Tensor }) => {
      const a = hostPlan({ s: tf.add(v, x) });
      const b = hostPlan({ s: tf.mul(a.t!, 2) });
      v.assign(tf.add(v, b.t!));
      return { s: tf.sum(v) };
    }, { name: 'twice', log: (l) => notes.push(l) });
    const x = tf.ones([2]);
    const planner: Planner = ({ s }) => ({ t: tf.tensor1d(Array.from(s!.dataSync(), (z) => z + 1)) });
    for (let i = 0; i < 4; i++) twice.call({ x }, planner).s!.dispose();
    // eager every call, exact: v <- v + 2 (v + 1 + 1) + 1 = 3v + 5
    assert.deepEqual(Array.from(v.dataSync()), [1, 2].map((z) => [0, 1, 2, 3].reduce((a) => 3 * a + 5, z)));
    assert.equal(twice.status().compiledCalls, 0);
    assert.match(twice.status().reason!, /hostPlan more than once/);
    assert.throws(() => twice.call({ x }), /without a planner/);
    twice.dispose();
    tf.dispose([x, v]);
  });

  it('fallbacks: a host read inside the step, a JS value that changes every step, compile: off', async () => {
    await useBackend('tensorflow');
    const v = tf.variable(tf.tensor1d([1, 2]), false, 'compiled-fallback-v');
    const notes: string[] = [];
    // host read: eager every call, reason logged once, results exact (v <- v + x, read mid-step)
    const reads = compileStep(({ x }: { x: tf.Tensor }) => {
      const s = tf.add(v, x) as tf.Tensor1D;
      const host = s.dataSync()[0]!; // what a JS-side matcher does
      v.assign(s);
      return { s: tf.mul(s, host) };
    }, { name: 'reads', log: (l) => notes.push(l) });
    const x = tf.ones([2]);
    for (let i = 0; i < 5; i++) reads.call({ x }).s!.dispose();
    assert.deepEqual(Array.from(v.dataSync()), [6, 7]);
    assert.equal(reads.status().state, 'eager');
    assert.equal(reads.status().compiledCalls, 0);
    assert.match(reads.status().reason!, /host/);
    assert.equal(notes.filter((n) => /host/.test(n)).length, 1, notes.join('\n'));

    // a number computed in JS per step would be frozen by a graph: it must not compile
    let t = 0;
    const drifting = compileStep(({ x }: { x: tf.Tensor }) => {
      t++;
      v.assign(tf.add(v, tf.mul(x, t)) as tf.Tensor1D);
      return { s: tf.sum(v) };
    }, { name: 'drift', log: quiet });
    for (let i = 0; i < 6; i++) drifting.call({ x }).s!.dispose();
    // 6 + (1+..+6) = 27, 7 + 21 = 28: every step used its own t
    assert.deepEqual(Array.from(v.dataSync()), [27, 28]);
    assert.equal(drifting.status().compiledCalls, 0);
    assert.match(drifting.tags()['rass.compile.drift.reason'] ?? '', /changes/);

    // a step that throws while recording: the error reaches the caller, the binding is restored
    // and no TensorFlow handle is left behind
    const handles = binding().getNumOfTensors();
    const throwing = compileStep(({ x }: { x: tf.Tensor }) => {
      tf.add(x, tf.scalar(3));
      throw new Error('boom');
    }, { name: 'throws', log: quiet });
    assert.throws(() => throwing.call({ x }), /boom/);
    assert.equal(typeof (tf.backend() as unknown as { binding: { registerFunction?: unknown } }).binding.registerFunction, 'function');
    assert.equal(Object.getPrototypeOf((tf.backend() as unknown as { binding: object }).binding), Object.prototype, 'the recording wrapper is still installed');
    assert.equal(binding().getNumOfTensors(), handles);

    // differentiated from outside (tf.grad around the call): eager, so the gradient exists
    const inner = compileStep(({ x: xi }: { x: tf.Tensor }) => ({ y: tf.sum(tf.mul(xi, xi)) }), { name: 'inner', log: quiet });
    const dx = tf.grad((xi: tf.Tensor) => inner.call({ x: xi }).y!);
    const x3 = tf.tensor1d([1, -2, 3]);
    for (let i = 0; i < 4; i++) tf.tidy(() => assert.deepEqual(Array.from(dx(x3).dataSync()), [2, -4, 6]));
    assert.equal(inner.status().compiledCalls, 0);
    assert.match(inner.status().reason!, /gradient/);
    x3.dispose();

    const off = compileStep(({ x }: { x: tf.Tensor }) => ({ y: tf.add(x, 1) }), { mode: 'off', name: 'off', log: quiet });
    off.call({ x }).y!.dispose();
    assert.deepEqual(off.tags(), { 'rass.compile.off': 'eager', 'rass.compile.off.reason': 'compile: off' });
    tf.dispose([x, v]);
  });

  it('on the cpu backend the step runs eagerly and says why', async () => {
    await useBackend('cpu');
    try {
      const v = tf.variable(tf.tensor1d([1]), false, 'compiled-cpu-v');
      const step = compileStep(({ x }: { x: tf.Tensor }) => {
        v.assign(tf.add(v, x));
        return { v: tf.clone(v) };
      }, { name: 'cpu', log: quiet });
      const x = tf.ones([1]);
      for (let i = 0; i < 3; i++) step.call({ x }).v!.dispose();
      assert.deepEqual(Array.from(v.dataSync()), [4]);
      assert.match(step.status().reason!, /backend "cpu"/);
      tf.dispose([x, v]);
    } finally {
      await useBackend('tensorflow');
    }
  });
});
