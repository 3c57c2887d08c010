import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf, loadCheckpoint, restoreWeights, saveCheckpoint, writeSafetensors, Rng, UserError, type CompileMode, type ComponentNode, type RunContext } from '../../framework/api.js';
import type { Adapter, Degradation, Metric, OneStepRestorer, SegDataset, SegHead, SegLoss, SegSample, Tagger } from '../../framework/api.js';
import { BatchSource, toUint8Images, type ImageBatch } from '../common/data.js';
import { makeOptimizer, MetricWindow, stepCheckpointName, type OptimizerConfig, type ScheduleConfig } from '../common/train.js';
import { PromptCache } from '../common/prompts.js';
import { gridPng, labelPicture, type Picture } from '../common/images.js';
import { FeatureProjector, tapGeometry } from './features.js';
import { predictLabels, type SegmenterMeta } from './segmenter.js';
import { RassStep } from './step.js';

export interface RassOptions {
  backbone: ComponentNode;
  scr_adapter?: ComponentNode;
  merge_scr: boolean;
  seg_lora: ComponentNode;
  features: string[];
  projection_dim: number;
  head: ComponentNode;
  loss: ComponentNode;
  train: { dataset: ComponentNode; degradation?: ComponentNode; input: 'lq' | 'hq'; crop?: [number, number]; batch_size: number };
  val: { dataset: ComponentNode; degradation?: ComponentNode; crop?: [number, number]; batch_size: number; size?: number; images: number; splits: ('lq' | 'hq')[] };
  tagger: ComponentNode;
  val_tagger?: ComponentNode;
  steps: number;
  optimizer: OptimizerConfig;
  backbone_lr_mult: number;
  schedule: ScheduleConfig;
  clip_grad_norm: number;
  log_every: number;
  eval_every: number;
  checkpoint_every: number;
  metrics?: ComponentNode[];
  compile?: CompileMode;
}

export interface RassComponents {
  backbone: OneStepRestorer;
  /** the SCR adapter when kept unmerged (frozen) */
  scr: Adapter | null;
  scrMerged: boolean;
  seg: Adapter;
  head: SegHead;
  loss: SegLoss;
  trainData: SegDataset;
  valData: SegDataset;
  trainDeg: Degradation | null;
  valDeg: Degradation | null;
  tagger: Tagger;
  valTagger: Tagger;
  metrics: Record<string, Metric[]>;
}

/** Everything a training step or a prediction needs, built once the input size is known. */
export interface Model {
  projector: FeatureProjector;
  /** trainable variables by stable name: seg LoRA, backbone params marked trainable, projections, head */
  vars: Record<string, tf.Variable>;
  backboneNames: string[];
}

export async function runRass(o: RassOptions, c: RassComponents, rc: RunContext): Promise<Record<string, number>> {
  const train = new BatchSource({ dataset: c.trainData, degradation: c.trainDeg, seed: rc.seed, split: 'train', crop: o.train.crop, randomCrop: true, where: 'experiment.train' });
  const val = new BatchSource({ dataset: c.valData, degradation: c.valDeg, seed: rc.seed, split: 'val', crop: o.val.crop, randomCrop: false, where: 'experiment.val' });
  const prompts = new PromptCache(c.backbone.textEncoder);
  let model: Model | null = null;
  let optimizer: ReturnType<typeof makeOptimizer> | null = null;
  let trainStep: RassStep | null = null;
  try {
    const first = await train.batch(train.trainIndices(0, 1));
    model = buildModel(o, c, rc, first, prompts);
    tf.dispose([first.hq, first.lq]);
    const backboneGroup = model.backboneNames.length ? [{ name: 'backbone', params: model.backboneNames, lr_mult: o.backbone_lr_mult }] : [];
    optimizer = makeOptimizer(model.vars, o.optimizer, o.schedule, o.steps, backboneGroup);
    let step = 0;
    if (rc.resume?.checkpointDir) {
      const ck = loadCheckpoint(rc.resume.checkpointDir);
      restoreWeights(model.vars, ck.weights, rc.resume.checkpointDir);
      if (ck.optimizer) optimizer.setState(ck.optimizer);
      step = (ck.data as { step: number }).step;
      rc.log.info(`resuming RASS from ${rc.resume.checkpointDir} at step ${step}`);
    } else {
      const count = (names: string[]) => names.reduce((s, n) => s + (model as Model).vars[n]!.size, 0);
      const all = Object.keys(model.vars);
      rc.logParams({
        model: { trainable_parameters: count(all), backbone_trainable_parameters: count(model.backboneNames), scr_merged: c.scrMerged, scr_adapter: c.scr ? 'unmerged' : c.scrMerged ? 'merged' : 'none', features: o.features.join(' | ') },
        data: { train_size: train.length, val_size: Math.min(val.length, o.val.size ?? val.length), train_input: o.train.input },
      });
    }
    const vars = model.vars;
    const save = (at: number) => rc.saveCheckpoint(stepCheckpointName(at), (dir) => saveCheckpoint(dir, { weights: vars, optimizer: (optimizer as ReturnType<typeof makeOptimizer>).getState(), schedule: { step: at }, data: { step: at } }));
    trainStep = new RassStep(o, c, model, optimizer, (l) => rc.log.info(l));
    const bar = rc.progress('rass', o.steps);
    if (step > 0) bar.update(step);
    const window = new MetricWindow();
    c.seg.setTraining(true);
    while (step < o.steps) {
      if (rc.signal.aborted) {
        await save(step);
        bar.done('stopped');
        return {};
      }
      const batch = await train.batch(train.trainIndices(step, o.train.batch_size));
      const values = runStep(o, c, trainStep, batch, prompts, Rng.derive(rc.seed, 'loss', step));
      tf.dispose([batch.hq, batch.lq]);
      step++;
      window.add(values);
      if (step % o.log_every === 0 || step === o.steps) rc.logMetrics(step, { ...window.flush(), lr: optimizer.lrFor() });
      bar.tick(1, `loss ${(values.loss as number).toFixed(4)}`);
      if (step % o.eval_every === 0 && step < o.steps) {
        c.seg.setTraining(false);
        rc.logMetrics(step, (await evaluate(o, c, model, val, prompts, rc, false)).scalars);
        c.seg.setTraining(true);
      }
      if (step % o.checkpoint_every === 0 && step < o.steps) await save(step);
      await new Promise((r) => setImmediate(r));
    }
    bar.done();
    rc.setTags(trainStep.tags());
    c.seg.setTraining(false);
    await save(step);
    const ev = await evaluate(o, c, model, val, prompts, rc, true);
    await saveModel(o, c, model, rc);
    return ev.scalars;
  } finally {
    trainStep?.dispose();
    prompts.dispose();
    optimizer?.dispose();
    model?.projector.dispose();
    c.seg.dispose();
    c.scr?.dispose();
    c.head.dispose();
    c.backbone.dispose();
  }
}

/**
 * Measure the taps once at the training input size, check them against the head, make the projections.
 * Exported (with runStep and RassStep) so `npm run bench -- rass` times the experiment's own step.
 */
export function buildModel(o: RassOptions, c: RassComponents, rc: Pick<RunContext, 'seed' | 'log'>, first: ImageBatch, prompts: PromptCache): Model {
  const ctx = prompts.batch(['']);
  let feats = new Map<string, tf.Tensor>();
  tf.tidy(() => {
    feats = c.backbone.features(first.lq, ctx, o.features); // taps are kept beyond the tidy
  });
  const geometry = tapGeometry(feats, first.height);
  tf.dispose([ctx, ...feats.values()]);
  const projector = new FeatureProjector(geometry, o.projection_dim, c.head.inStrides, rc.seed, 'experiment.head.inStrides');
  rc.log.info(`RASS features: ${geometry.map((g) => `${g.name} (${g.channels} ch, stride ${g.stride})`).join(', ')} -> head strides ${c.head.inStrides.join('/')}`);
  const vars: Record<string, tf.Variable> = {};
  Object.assign(vars, c.seg.namedVariables());
  const store = c.backbone.unet.store;
  const backboneNames = [...Object.keys(vars)];
  const owned = new Set(Object.values(vars)); // a seg_lora with modules_to_save already owns those params
  for (const name of store.trainable ?? []) {
    const v = store.params.get(name)?.variable;
    if (v && !owned.has(v)) {
      vars[`unet.${name}`] = v;
      backboneNames.push(`unet.${name}`);
    }
  }
  Object.assign(vars, projector.vars);
  for (const [k, v] of c.head.params) vars[`head.${k}`] = v;
  return { projector, vars, backboneNames };
}

export function targetsOf(samples: readonly SegSample[], numClasses: number, ignoreIndex: number, where: string): { labels: Uint8Array; batch: number; height: number; width: number; ignoreIndex: number } {
  const { height, width } = samples[0] as SegSample;
  const labels = new Uint8Array(samples.length * height * width);
  samples.forEach((s, i) => {
    if (!s.label) throw new UserError(`${where}: sample ${s.file ?? s.id} has no label map; segmentation training needs labelled data`);
    for (let k = 0; k < s.label.length; k++) {
      const v = s.label[k] as number;
      if (v !== ignoreIndex && v >= numClasses) throw new UserError(`${where}: ${s.file ?? s.id} has label ${v} at pixel ${k}, but the head has ${numClasses} classes (0..${numClasses - 1}; ${ignoreIndex} = ignore)`);
    }
    labels.set(s.label, i * height * width);
  });
  return { labels, batch: samples.length, height, width, ignoreIndex };
}

/** One optimiser step on a batch: its targets and prompts, then the (compiled where possible) RassStep. Exported for `npm run bench -- rass`. */
export function runStep(o: RassOptions, c: RassComponents, step: RassStep, batch: ImageBatch, prompts: PromptCache, rng: Rng): Record<string, number> {
  const targets = targetsOf(batch.samples, c.head.numClasses, c.trainData.ignoreIndex, 'experiment.train.dataset');
  const context = prompts.batch(batch.samples.map((s) => c.tagger.tagsFor(s, c.trainData.classNames, c.trainData.ignoreIndex).join(', ')));
  try {
    return step.run(o.train.input === 'lq' ? batch.lq : batch.hq, context, targets, rng);
  } finally {
    context.dispose();
  }
}

/** Per split (degraded / clean input): segmentation metrics, per-class and per-image tables, a prediction grid. */
async function evaluate(o: RassOptions, c: RassComponents, m: Model, val: BatchSource, prompts: PromptCache, rc: RunContext, artifacts: boolean): Promise<{ scalars: Record<string, number> }> {
  const n = Math.min(val.length, o.val.size ?? val.length);
  const scalars: Record<string, number> = {};
  for (const split of o.val.splits) {
    const metrics = c.metrics[split] as Metric[];
    for (const mt of metrics) mt.reset();
    const grid: Picture[][] = [];
    const perImage: { id: string; miou: number; pacc: number }[] = [];
    for (let start = 0; start < n; start += o.val.batch_size) {
      const items = Array.from({ length: Math.min(o.val.batch_size, n - start) }, (_, j) => ({ epoch: 0, index: start + j }));
      const batch = await val.batch(items);
      const context = prompts.batch(batch.samples.map((s) => c.valTagger.tagsFor(s, c.valData.classNames, c.valData.ignoreIndex).join(', ')));
      const input = split === 'lq' ? batch.lq : batch.hq;
      const pred = predictLabels(c.backbone, c.head, m.projector, o.features, input, context, batch.height, batch.width);
      const ids = batch.samples.map((s) => s.id);
      const labelMap = (data: ArrayLike<number>) => ({ data, height: batch.height, width: batch.width });
      const gts = batch.samples.map((s) => s.label ?? new Uint8Array(batch.height * batch.width).fill(c.valData.ignoreIndex));
      for (const mt of metrics) mt.update({ ids, segPred: pred.map(labelMap), segGt: gts.map(labelMap) });
      pred.forEach((p, i) => perImage.push({ id: ids[i] as string, ...imageScores(p, gts[i] as Uint8Array, c.head.numClasses, c.valData.ignoreIndex) }));
      if (artifacts && grid.length < o.val.images) {
        const images = toUint8Images(input);
        for (let i = 0; i < batch.samples.length && grid.length < o.val.images; i++) {
          const s = batch.samples[i] as SegSample;
          grid.push([
            { pixels: images[i] as Uint8Array, height: batch.height, width: batch.width },
            labelPicture(pred[i] as Uint8Array, batch.height, batch.width, c.valData.ignoreIndex),
            labelPicture(s.label ?? new Uint8Array(batch.height * batch.width).fill(c.valData.ignoreIndex), batch.height, batch.width, c.valData.ignoreIndex),
          ]);
        }
      }
      tf.dispose([batch.hq, batch.lq, context]);
    }
    for (const mt of metrics) {
      const r = mt.compute();
      const name = mt.name.replace(/[^a-z0-9]+/gi, '_');
      // detectron2's convention is the paper's: its names stay plain; other metrics get a suffix
      const suffix = mt.name === 'miou' ? '' : `_${name.replace(/^miou_/, '')}`;
      for (const [k, v] of Object.entries(r.scalars)) if (!k.includes('/')) scalars[`val_${split}/${k}${suffix}`] = v;
      if (artifacts) for (const t of r.tables ?? []) await rc.logArtifact(`val_${split}/${name}_${t.name}.csv`, csv(t.columns, t.rows));
    }
    if (artifacts) await rc.logArtifact(`val_${split}/per_image.csv`, csv(['id', 'miou', 'pacc'], perImage.map((p) => [p.id, p.miou, p.pacc])));
    if (artifacts && grid.length) await rc.logArtifact(`images/val_${split}_predictions.png`, gridPng(grid));
  }
  return { scalars };
}

/** The trained segmenter: Seg adapter (PEFT), projections + head + trained backbone params, and how to rebuild it. */
async function saveModel(o: RassOptions, c: RassComponents, m: Model, rc: RunContext): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rass-model-'));
  try {
    // UNet modules trained whole (conv_in) travel in the Seg adapter as PEFT modules_to_save, so
    // peft and loadSegmenter restore them from the adapter alone; other backbone params stay in weights
    const whole = wholeModules(c.backbone.unet.store, m.backboneNames);
    c.seg.save(join(dir, `adapter_${c.seg.name}`), { modulesToSave: whole });
    const inAdapter = (k: string) => k.startsWith(`${c.seg.name}.`) || whole.some((w) => k.startsWith(`unet.${w}.`));
    const weights: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const [k, v] of Object.entries(m.vars)) if (!inAdapter(k)) weights[k] = { dtype: 'F32', shape: v.shape, data: Float32Array.from(v.dataSync() as Float32Array) };
    writeSafetensors(join(dir, 'weights.safetensors'), weights, { format: 'rass-segmenter/1' });
    const meta: SegmenterMeta = { features: o.features, projection_dim: o.projection_dim, head_strides: [...c.head.inStrides], num_classes: c.head.numClasses, scr_merged: c.scrMerged, seg_adapter: `adapter_${c.seg.name}`, taps: [...m.projector.taps] };
    for (const [sub, files] of [['', ['weights.safetensors']], [`adapter_${c.seg.name}`, readdirSync(join(dir, `adapter_${c.seg.name}`))]] as const) {
      for (const f of files) await rc.logArtifact(`model/${sub ? `${sub}/` : ''}${f}`, readFileSync(join(dir, sub, f)));
    }
    await rc.logArtifact('model/model.json', `${JSON.stringify(meta, null, 2)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * UNet modules (names before the last dot) all of whose parameters are among the trained `unet.*`
 * names, and that PEFT can store whole: a Linear/Conv2d (a Seg LoRA layer on it is folded into the
 * saved copy) or a module of 1-D parameters (norms).
 */
function wholeModules(store: OneStepRestorer['unet']['store'], trained: readonly string[]): string[] {
  const names = new Set(trained.filter((n) => n.startsWith('unet.')).map((n) => n.slice(5)));
  const modules = new Set([...names].map((n) => n.slice(0, n.lastIndexOf('.'))));
  return [...modules].filter((mod) => {
    const params = [...store.params].filter(([p]) => p.startsWith(`${mod}.`));
    if (!params.every(([p]) => names.has(p))) return false;
    return store.modules.has(mod) || params.every(([, v]) => v.variable.rank === 1);
  });
}

/** One image's mIoU (classes present in its ground truth, detectron2's rule) and pixel accuracy, in percent. */
export function imageScores(pred: Uint8Array, gt: Uint8Array, numClasses: number, ignore: number): { miou: number; pacc: number } {
  const inter = new Float64Array(numClasses);
  const predCount = new Float64Array(numClasses);
  const gtCount = new Float64Array(numClasses);
  let correct = 0;
  let total = 0;
  for (let i = 0; i < gt.length; i++) {
    const g = gt[i] as number;
    if (g === ignore) continue;
    const p = pred[i] as number;
    total++;
    gtCount[g]++;
    if (p < numClasses) predCount[p]++;
    if (p === g) {
      inter[g]++;
      correct++;
    }
  }
  let sum = 0;
  let k = 0;
  for (let c = 0; c < numClasses; c++) {
    if (gtCount[c] === 0) continue;
    sum += inter[c]! / (gtCount[c]! + predCount[c]! - inter[c]!);
    k++;
  }
  return { miou: k ? (100 * sum) / k : NaN, pacc: total ? (100 * correct) / total : NaN };
}

function csv(columns: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  return [columns.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n';
}

