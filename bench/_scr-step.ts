/**
 * One process measuring this project's SCR training step (the real `experiment/scr` step:
 * VAE encode, UNet + LoRA with attention capture, decode, restoration + SCL, backward, AdamW)
 * on a diffusers folder, for `npm run bench -- scr`. Serves steps on request (bench/_lockstep.ts),
 * in turn with the peer's, on batches made beforehand (WARM + ITERS of them, cycled); "stats"
 * gives the peak RSS and whether the step compiled. Run in its own process so peak RSS is this
 * step's alone. argv: PRIOR_DIR BATCH SIZE ITERS [COMPILE: auto (default) | off | xla]. With
 * auto the step compiles after its recordings on native: the ready line's `warm` says how many
 * calls the bench's median skips (eager: one warm-up step).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../framework/engine/backend.js';
import { buildNode } from '../framework/config/index.js';
import { PluginRegistry } from '../framework/plugins/registry.js';
import { registryPackage } from '../registry/index.js';
import { experimentsPackage } from '../experiments/index.js';
import type { AttentionLoss, ImageLoss, OneStepRestorer, SegDataset, Tagger, Adapter, Degradation } from '../framework/api.js';
import { BatchSource, type ImageBatch } from '../experiments/common/data.js';
import { promptsAndTargets } from '../experiments/common/attention.js';
import { PromptCache } from '../experiments/common/prompts.js';
import { makeOptimizer } from '../experiments/common/train.js';
import { SCR_LORA_TARGETS } from '../experiments/scr/plugin.js';
import { ScrStep, type ScrComponents, type ScrOptions } from '../experiments/scr/train.js';
import { serveSteps } from './_lockstep.js';

const [prior, batchArg, sizeArg, itersArg, compileArg] = process.argv.slice(2);
const batch = Number(batchArg);
const size = Number(sizeArg);
const iters = Number(itersArg);
const quiet = { info: () => {}, warn: () => {}, debug: () => {} };
const info = await initBackend({ prefer: 'auto', log: null });
const registry = new PluginRegistry();
registry.loadPackage(registryPackage);
registry.loadPackage(experimentsPackage);
const build = <T>(node: Record<string, unknown>) => buildNode<T>(node as never, registry, { seed: 0, log: quiet });
const part = (kind: string) => ({ type: `backbone/${kind}`, preset: 'sd21-base', path: prior });
const restorer = await build<OneStepRestorer>({ type: 'backbone/one-step', unet: part('unet2d-condition'), vae: part('autoencoder-kl'), text_encoder: part('clip-text') });
const lora = await build<Adapter>({ type: 'adapter/lora', name: 'scr', r: 4, alpha: 4, target_modules: SCR_LORA_TARGETS });
lora.attach(restorer.unet.store);
const dataset = await build<SegDataset>({ type: 'dataset/shapes', length: 64, height: size, width: size });
const degradation = await build<Degradation>({ type: 'degradation/pipeline', stages: [{ id: 'noise', type: 'degradation/noise', gaussian_prob: 1, sigma_range: [1, 10] }] });
const tagger = await build<Tagger>({ type: 'tagger/label-map' });
const loss = await build<ImageLoss>({ type: 'loss/mse' });
const scl = await build<AttentionLoss>({ type: 'loss/scl' });
const c = { restorer, lora, trainData: dataset, tagger, loss, scl, layers: scl.layers } as unknown as ScrComponents;
const o = { scl_weight: 1, clip_grad_norm: 1, compile: compileArg === 'off' || compileArg === 'xla' ? compileArg : 'auto' } as ScrOptions;
const vars = lora.namedVariables();
const optimizer = makeOptimizer(vars, { type: 'adamw', lr: 1e-4, weight_decay: 0.01, betas: [0.9, 0.999], eps: 1e-8, momentum: 0 }, { type: 'constant', power: 1, min_lr: 0, warmup_iters: 0, warmup_ratio: 1 }, 1000);
const source = new BatchSource({ dataset, degradation, seed: 0, split: 'train', randomCrop: false, where: 'bench' });
const prompts = new PromptCache(restorer.textEncoder);
lora.setTraining(true);
const step = new ScrStep(o, c, optimizer, vars, () => {});
// compiled: two agreeing recordings (three when the first creates the optimiser slots)
const warmup = o.compile !== 'off' && info.name === 'tensorflow' ? 4 : 1;
// batches, prompts and targets made before the first step: the steps alone are timed
const prepared: { b: ImageBatch; context: tf.Tensor3D; targets: ReturnType<typeof promptsAndTargets>['targets'] }[] = [];
for (let i = 0; i < warmup + iters; i++) {
  const b = await source.batch(source.trainIndices(i, batch));
  const { prompts: texts, targets } = promptsAndTargets(b.samples, tagger, restorer.textEncoder, dataset.classNames, dataset.ignoreIndex);
  prepared.push({ b, context: prompts.batch(texts), targets });
}
let next = 0;
await serveSteps(
  {
    step: () => {
      const { b, context, targets } = prepared[next++ % prepared.length]!;
      return step.run(b, context, targets).loss as number;
    },
  },
  { warm: warmup, backend: info.name, threads: info.threads ?? null },
  { stats: () => ({ compile: step.tags()['rass.compile.scr'] ?? 'eager' }) },
);
for (const p of prepared) tf.dispose([p.b.hq, p.b.lq, p.context]);
