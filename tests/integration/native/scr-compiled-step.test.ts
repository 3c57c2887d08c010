import './_onednn-off.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../../../framework/engine/backend.js';
import { buildNode } from '../../../framework/config/index.js';
import type { Adapter, AttentionLoss, ImageLoss, OneStepRestorer, SegDataset, Tagger } from '../../../framework/api.js';
import type { CompileMode } from '../../../framework/engine/compile.js';
import type { ImageBatch } from '../../../experiments/common/data.js';
import { promptsAndTargets } from '../../../experiments/common/attention.js';
import { PromptCache } from '../../../experiments/common/prompts.js';
import { makeOptimizer } from '../../../experiments/common/train.js';
import { SCR_LORA_TARGETS } from '../../../experiments/scr/plugin.js';
import { ScrStep, type ScrComponents, type ScrOptions } from '../../../experiments/scr/train.js';
import { fullRegistry } from '../../helpers/experiments.js';
import { noisyShapeBatches } from './_batches.js';
import { compiledSkipReason, relErr, tf } from './_native.js';

/**
 * The SCR training step (experiments/scr/train.ts ScrStep: one-step restorer on the tiny-shapes
 * prior with an SCR LoRA, MSE + lambda x loss/scl on the cross-attention maps, in-graph clipping,
 * AdamW) run with `compile: auto` (one registered TensorFlow function per step after two agreeing
 * recordings) and `compile: off` (eager tfjs): the same losses, SCL terms and LoRA weights within
 * 1e-5 relative over 12 steps, the compiled run really compiled. The batches vary the number of
 * matched tags per sample (the prepared targets keep fixed shapes). An attention loss without
 * prepare/computePrepared (as a third-party plugin) runs the same step eagerly, says why, and
 * gives the same numbers through its `compute`.
 */
const TOL = 1e-5;
const STEPS = 12;
const BATCH = 2;
const SIZE = 32;

const skip = compiledSkipReason();
const quiet = { info: () => {}, warn: () => {}, debug: () => {} };

type Variant = CompileMode | 'no-prepare';

async function scrRun(variant: Variant, batches: readonly ImageBatch[]) {
  const registry = fullRegistry();
  const build = <T>(node: Record<string, unknown>) => buildNode<T>(node as never, registry, { seed: 0, log: quiet });
  const part = (kind: string) => ({ type: `backbone/${kind}`, preset: 'tiny-shapes' });
  const restorer = await build<OneStepRestorer>({ type: 'backbone/one-step', unet: part('unet2d-condition'), vae: part('autoencoder-kl'), text_encoder: part('clip-text'), timestep: 999 });
  const lora = await build<Adapter>({ type: 'adapter/lora', name: 'scr', r: 4, alpha: 4, init: 'gaussian', target_modules: SCR_LORA_TARGETS });
  lora.attach(restorer.unet.store);
  const tagger = await build<Tagger>({ type: 'tagger/label-tags' });
  const loss = await build<ImageLoss>({ type: 'loss/mse' });
  const built = await build<AttentionLoss>({ type: 'loss/scl', layers: ['.*attn2'], reduction: 'sample-mean', max_tags: 6 });
  // what a third-party attention loss looks like: compute only
  const scl: AttentionLoss = variant === 'no-prepare' ? { type: 'scl-compute-only', layers: built.layers, compute: (a, s) => built.compute(a, s) } : built;
  const c = { restorer, lora, tagger, loss, scl, layers: scl.layers } as unknown as ScrComponents;
  const o = { scl_weight: 1, clip_grad_norm: 0.05, compile: variant === 'off' ? 'off' : 'auto' } as ScrOptions;
  const vars = lora.namedVariables();
  const optimizer = makeOptimizer(vars, { type: 'adamw', lr: 2e-3, weight_decay: 0.01, betas: [0.9, 0.999], eps: 1e-8, momentum: 0 }, { type: 'cosine', power: 1, min_lr: 1e-4, warmup_iters: 3, warmup_ratio: 0.1 }, STEPS);
  const logs: string[] = [];
  const step = new ScrStep(o, c, optimizer, vars, (l) => logs.push(l));
  const prompts = new PromptCache(restorer.textEncoder);
  lora.setTraining(true);
  const values: Record<string, number>[] = [];
  const dataset = (batches as unknown as { dataset: SegDataset }).dataset;
  const tensorsBefore = tf.memory().numTensors;
  let tensorsAfterWarmup = 0;
  for (const b of batches) {
    const { prompts: texts, targets } = promptsAndTargets(b.samples, tagger, restorer.textEncoder, dataset.classNames, dataset.ignoreIndex);
    const context = prompts.batch(texts);
    values.push(step.run(b, context, targets));
    context.dispose();
    if (values.length === 4) tensorsAfterWarmup = tf.memory().numTensors;
  }
  const tensorsEnd = tf.memory().numTensors;
  const weights = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v.dataSync().slice() as Float32Array]));
  const tags = step.tags();
  step.dispose();
  prompts.dispose();
  optimizer.dispose();
  lora.dispose();
  restorer.dispose();
  return { values, weights, tags, logs, tensorsBefore, tensorsAfterWarmup, tensorsEnd };
}

const makeBatches = () => noisyShapeBatches(STEPS, BATCH, SIZE);

describe('SCR step compiled (native backend)', { skip }, () => {
  it('SCR + SCL on the tiny prior: compiled and eager losses, SCL terms and LoRA weights agree within 1e-5 over 12 steps', async () => {
    await useBackend('tensorflow');
    const batches = await makeBatches();
    const eager = await scrRun('off', batches);
    const compiled = await scrRun('auto', batches);
    const noPrepare = await scrRun('no-prepare', batches);
    tf.dispose(batches.flatMap((b) => [b.hq, b.lq]));

    assert.equal(eager.tags['rass.compile.scr'], 'eager');
    assert.equal(compiled.tags['rass.compile.scr'], 'compiled', JSON.stringify(compiled.tags) + compiled.logs.join('\n'));
    assert.equal(noPrepare.tags['rass.compile.scr'], 'eager');
    assert.match(noPrepare.tags['rass.compile.scr.reason'] ?? '', /"scl-compute-only" has no prepare\/computePrepared/);
    assert.ok(noPrepare.logs.some((l) => l.includes('runs eagerly') && l.includes('scl-compute-only')), noPrepare.logs.join('\n'));

    // the batches exercise the fixed-K path: different tag counts per sample, SCL really active
    const matched = eager.values.map((v) => v['scl/matched']!);
    assert.ok(new Set(matched).size > 1, `matched tags per batch do not vary: ${matched}`);
    assert.ok(eager.values.every((v) => v['loss/scl']! > 0.05), `SCL term ${eager.values.map((v) => v['loss/scl'])}`);
    const series = (r: typeof eager, k: string) => r.values.map((v) => v[k]!);
    for (const [label, got] of [['compiled', compiled], ['no-prepare', noPrepare]] as const) {
      for (const k of ['loss', 'loss/mse', 'loss/scl', 'grad_norm', 'scl/matched', 'scl/unmatched']) {
        const e = relErr(Float32Array.from(series(got, k)), Float32Array.from(series(eager, k)));
        assert.ok(e <= TOL, `${label} ${k}: ${series(got, k)} vs eager ${series(eager, k)} (relative error ${e})`);
      }
      let moved = 0;
      for (const [k, w] of Object.entries(eager.weights)) {
        const e = relErr(got.weights[k]!, w);
        assert.ok(e <= TOL, `${label} ${k}: relative error ${e}`);
        if (k.endsWith('.B') || k.includes('lora_B')) moved = Math.max(moved, Math.max(...Array.from(w, Math.abs)));
      }
      assert.ok(moved > 1e-4, `LoRA B weights did not move (max |B| ${moved})`);
    }
    // clipping at 0.05 is active (the in-graph coefficient matters)
    assert.ok(eager.values.filter((v) => v.grad_norm! > 0.05).length >= STEPS / 2, `grad norms ${series(eager, 'grad_norm')}`);
    // compiled steps leak nothing from step to step (prepared targets and attention maps disposed)
    assert.equal(compiled.tensorsEnd, compiled.tensorsAfterWarmup, 'tensor count grew during compiled steps');
  });
});
