/**
 * One process measuring this project's RASS training step for `npm run bench -- rass`: the
 * experiment's own `buildModel` + `trainStep` (experiments/rass/train.ts) on components built
 * from configs/rass/shapes-tiny.yaml's nodes (tiny-shapes prior with conv_in trainable, timestep
 * 1, its feature taps, Seg LoRA, projections, Mask2Former head, loss, optimiser and schedule).
 * The SCR adapter is tests/fixtures/scr/adapter (a trained SCR adapter for this prior, non-zero
 * B) merged into the UNet, since the config's `from_run` needs an SCR run. Batches (rass-full
 * degraded, as the config) are made before timing; their LQ images, labels and prompt
 * contexts are written to OUT_FILE so the PyTorch peer steps on the same data.
 * Then serves steps on request (bench/_lockstep.ts), in turn with the peer's: its ready line
 * carries the backend, threads, the taps' geometry and the head config (the peer builds the same
 * head from it); each reply a step's time, process CPU time (all threads) and loss; "stats" the
 * peak RSS and whether the step compiled. ITERS + 1 batches are made, and steps cycle through them.
 * argv: ITERS BATCH THREADS OUT_FILE [COMPILE: auto (default) | xla]
 */
import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { initBackend } from '../framework/engine/backend.js';
import { buildNode, loadConfig } from '../framework/config/index.js';
import { validateTree } from '../framework/config/validate.js';
import { OriginMap } from '../framework/config/origins.js';
import { writeSafetensors, Rng, type ComponentNode } from '../framework/api.js';
import { PluginRegistry } from '../framework/plugins/registry.js';
import { registryPackage } from '../registry/index.js';
import { experimentsPackage } from '../experiments/index.js';
import type { Adapter, Degradation, OneStepRestorer, SegDataset, SegHead, SegLoss, Tagger } from '../framework/api.js';
import { BatchSource, type ImageBatch } from '../experiments/common/data.js';
import { PromptCache } from '../experiments/common/prompts.js';
import { makeOptimizer } from '../experiments/common/train.js';
import { buildModel, runStep, type RassComponents, type RassOptions } from '../experiments/rass/train.js';
import { RassStep } from '../experiments/rass/step.js';
import { serveSteps } from './_lockstep.js';

const [itersArg, batchArg, threadsArg, outFile, compileArg] = process.argv.slice(2);
const compileMode = compileArg === 'xla' ? 'xla' : 'auto';
const iters = Number(itersArg);
const batchSize = Number(batchArg);
const root = process.cwd();
const SCR_ADAPTER = 'tests/fixtures/scr/adapter';
const quiet = { info: () => {}, warn: () => {}, debug: () => {} };
const info = await initBackend({ prefer: 'auto', threads: Number(threadsArg), log: null });
const registry = new PluginRegistry();
registry.loadPackage(registryPackage);
registry.loadPackage(experimentsPackage);
const cfg = await loadConfig(join(root, 'configs/rass/shapes-tiny.yaml'));
// the adapter instead of the config's from_run; schema defaults filled in as a run gets them
const tree = { experiment: { ...(cfg.value as { experiment: Record<string, unknown> }).experiment, scr_adapter: { type: 'adapter/lora', name: 'scr', load: join(root, SCR_ADAPTER) } } };
validateTree(tree, new OriginMap(), registry, {});
const o = tree.experiment as unknown as RassOptions;
o.train = { ...o.train, batch_size: batchSize };
o.compile = compileMode;
const build = <T>(node: ComponentNode) => buildNode<T>(node, registry, { seed: 0, log: quiet, baseDir: root });
const backbone = await build<OneStepRestorer>(o.backbone);
const scr = await build<Adapter>(o.scr_adapter as ComponentNode);
scr.attach(backbone.unet.store);
scr.mergeAndUnload();
const seg = await build<Adapter>(o.seg_lora);
seg.attach(backbone.unet.store);
const head = await build<SegHead>(o.head);
const loss = await build<SegLoss>(o.loss);
const trainData = await build<SegDataset>(o.train.dataset);
const trainDeg = o.train.degradation ? await build<Degradation>(o.train.degradation) : null;
const tagger = await build<Tagger>(o.tagger);
const c: RassComponents = { backbone, scr: null, scrMerged: true, seg, head, loss, trainData, valData: trainData, trainDeg, valDeg: null, tagger, valTagger: tagger, metrics: {} };
const source = new BatchSource({ dataset: trainData, degradation: trainDeg, seed: 0, split: 'train', crop: o.train.crop, randomCrop: true, where: 'bench' });
const prompts = new PromptCache(backbone.textEncoder);
const first = await source.batch(source.trainIndices(0, 1));
const model = buildModel(o, c, { seed: 0, log: quiet }, first, prompts);
tf.dispose([first.hq, first.lq]);
const backboneGroup = model.backboneNames.length ? [{ name: 'backbone', params: model.backboneNames, lr_mult: o.backbone_lr_mult }] : [];
const optimizer = makeOptimizer(model.vars, o.optimizer, o.schedule, o.steps, backboneGroup);

// data (degradation) and prompt encoding outside the timed step: the peer gets the same tensors
const batches: ImageBatch[] = [];
const saved: Parameters<typeof writeSafetensors>[1] = {};
for (let i = 0; i <= iters; i++) {
  const b = await source.batch(source.trainIndices(i, batchSize));
  batches.push(b);
  const ctx = prompts.batch(b.samples.map((s) => tagger.tagsFor(s, trainData.classNames, trainData.ignoreIndex).join(', ')));
  saved[`lq.${i}`] = { dtype: 'F32', shape: b.lq.shape, data: b.lq.dataSync() as Float32Array };
  saved[`context.${i}`] = { dtype: 'F32', shape: ctx.shape, data: ctx.dataSync() as Float32Array };
  saved[`label.${i}`] = { dtype: 'F32', shape: [b.samples.length, b.height, b.width], data: Float32Array.from(b.samples.flatMap((s) => [...(s.label as Uint8Array)])) };
  ctx.dispose(); // the cache keeps its own copy
}
writeSafetensors(outFile as string, saved);

// compiled (native backend, compile: auto): the first two steps record the step, the rest run the
// compiled function; through XLA (compile: xla) the first compiled call also compiles with XLA.
// Steps run on request (bench/_lockstep.ts), in turn with the peer's: "step" the compiled step
// on the next batch, "eager" the eager step (compile: off) beside it. WARM: the calls before the
// compiled function runs (the bench's medians skip them).
const WARM = compileMode === 'xla' ? 3 : 2;
seg.setTraining(true);
const compiledStep = new RassStep(o, c, model, optimizer, () => {});
const eagerStep = new RassStep({ ...o, compile: 'off' }, c, model, optimizer, () => {});
let next = 0;
const stepOn = (step: RassStep) => () => {
  const i = next++ % batches.length;
  return runStep(o, c, step, batches[i] as ImageBatch, prompts, Rng.derive(0, 'loss', i)).loss as number;
};
const count = (names: string[]) => names.reduce((s, n) => s + (model.vars[n] as tf.Variable).size, 0);
await serveSteps(
  {
    step: stepOn(compiledStep),
    eager: stepOn(eagerStep),
  },
  {
    warm: WARM,
    batches: batches.length,
    backend: info.name,
    threads: info.threads ?? null,
    taps: model.projector.taps,
    head: o.head,
    num_points: (o.loss as { numPoints?: number }).numPoints,
    projection_dim: o.projection_dim,
    features: o.features,
    timestep: (o.backbone as { timestep?: number }).timestep,
    seg_lora: o.seg_lora,
    optimizer: o.optimizer,
    schedule: o.schedule,
    backbone_lr_mult: o.backbone_lr_mult,
    clip_grad_norm: o.clip_grad_norm,
    steps: o.steps,
    trainable: count(Object.keys(model.vars)),
    backbone_trainable: count(model.backboneNames),
  },
  // the compiled step's state once it has run: compiled, or eager (with the reason in its tags)
  { stats: () => ({ compile: compiledStep.tags()['rass.compile.rass'] ?? 'eager' }) },
);
compiledStep.dispose();
eagerStep.dispose();
for (const b of batches) tf.dispose([b.hq, b.lq]);
