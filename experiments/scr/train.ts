import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf, loadCheckpoint, restoreWeights, saveCheckpoint, type CompileMode, type ComponentNode, type RunContext } from '../../framework/api.js';
import type { Adapter, AttentionLoss, AttentionSample, AttentionShapes, Degradation, ImageLoss, Metric, OneStepRestorer, SegDataset, Tagger } from '../../framework/api.js';
import { BatchSource, toUint8Images, type ImageBatch } from '../common/data.js';
import { attentionAgreement, mapGrid, promptsAndTargets } from '../common/attention.js';
import { makeOptimizer, MetricWindow, stepCheckpointName, type OptimizerConfig, type ScheduleConfig } from '../common/train.js';
import { gridPng, maskPicture, overlay, type Picture } from '../common/images.js';
import { PromptCache } from '../common/prompts.js';
import { TrainStep } from '../common/train-step.js';

export interface ScrOptions {
  restorer: ComponentNode;
  lora: ComponentNode;
  train: { dataset: ComponentNode; degradation?: ComponentNode; crop?: [number, number]; batch_size: number };
  val: { dataset: ComponentNode; degradation?: ComponentNode; crop?: [number, number]; batch_size: number; size?: number; images: number };
  tagger: ComponentNode;
  loss: ComponentNode;
  scl: ComponentNode;
  scl_weight: number;
  attention_layers?: string[];
  steps: number;
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  clip_grad_norm: number;
  /** auto: each step runs as one compiled TensorFlow function on native (eager elsewhere, or with an attention loss without `prepare`) */
  compile?: CompileMode;
  log_every: number;
  eval_every: number;
  checkpoint_every: number;
  metrics: ComponentNode[];
}

export interface ScrComponents {
  restorer: OneStepRestorer;
  lora: Adapter;
  trainData: SegDataset;
  valData: SegDataset;
  trainDeg: Degradation | null;
  valDeg: Degradation | null;
  tagger: Tagger;
  loss: ImageLoss;
  scl: AttentionLoss;
  /** attention layers captured (SCL and the agreement metric) */
  layers: readonly string[];
  restoredMetrics: Metric[];
  lqMetrics: Metric[];
}

/** Validation results: metric scalars of the restored images (and of LQ), attention agreement. */
interface Evaluation {
  scalars: Record<string, number>;
  perImage: { id: string; values: Record<string, number> }[];
}

export async function runScr(o: ScrOptions, c: ScrComponents, rc: RunContext): Promise<Record<string, number>> {
  const train = new BatchSource({ dataset: c.trainData, degradation: c.trainDeg, seed: rc.seed, split: 'train', crop: o.train.crop, randomCrop: true, where: 'experiment.train' });
  const val = new BatchSource({ dataset: c.valData, degradation: c.valDeg, seed: rc.seed, split: 'val', crop: o.val.crop, randomCrop: false, where: 'experiment.val' });
  const prompts = new PromptCache(c.restorer.textEncoder);
  const vars = c.lora.namedVariables();
  const optimizer = makeOptimizer(vars, o.optimizer, o.schedule, o.steps);
  try {
    let step = 0;
    let baseline: Record<string, number> = {};
    if (rc.resume?.checkpointDir) {
      const ck = loadCheckpoint(rc.resume.checkpointDir);
      restoreWeights(vars, ck.weights, rc.resume.checkpointDir);
      if (ck.optimizer) optimizer.setState(ck.optimizer);
      step = (ck.data as { step: number }).step;
      baseline = ((ck.extra as { baseline?: Record<string, number> } | undefined)?.baseline) ?? {};
      rc.log.info(`resuming SCR from ${rc.resume.checkpointDir} at step ${step}`);
    } else {
      const trainable = Object.values(vars).reduce((s, v) => s + v.size, 0);
      rc.logParams({ model: { trainable_parameters: trainable, attention_layers: c.layers.join(' | ') }, data: { train_size: train.length, val_size: Math.min(val.length, o.val.size ?? val.length) } });
      // step 0: the zero-LoRA restorer (a fresh adapter is a no-op) and the LQ input itself
      const ev = await evaluate(o, c, val, prompts, rc, false);
      baseline = prefixed(ev.scalars, 'zero_lora/');
      rc.logMetrics(0, { ...prefixed(ev.scalars, 'val/') });
    }
    const save = (at: number) => rc.saveCheckpoint(stepCheckpointName(at), (dir) => saveCheckpoint(dir, { weights: vars, optimizer: optimizer.getState(), schedule: { step: at }, data: { step: at }, extra: { baseline } }));

    const scrStep = new ScrStep(o, c, optimizer, vars, (l) => rc.log.info(l));
    const bar = rc.progress('scr', o.steps);
    if (step > 0) bar.update(step);
    c.lora.setTraining(true);
    const window = new MetricWindow();
    while (step < o.steps) {
      if (rc.signal.aborted) {
        await save(step);
        bar.done('stopped');
        rc.setTags(scrStep.tags());
        scrStep.dispose();
        return {};
      }
      const batch = await train.batch(train.trainIndices(step, o.train.batch_size));
      const { prompts: texts, targets } = promptsAndTargets(batch.samples, c.tagger, c.restorer.textEncoder, c.trainData.classNames, c.trainData.ignoreIndex);
      const context = prompts.batch(texts);
      const values = scrStep.run(batch, context, targets);
      tf.dispose([batch.hq, batch.lq, context]);
      step++;
      window.add(values);
      if (step % o.log_every === 0 || step === o.steps) rc.logMetrics(step, { ...window.flush(), lr: optimizer.lrFor() });
      bar.tick(1, `loss ${(values.loss as number).toFixed(4)}`);
      if (step % o.eval_every === 0 && step < o.steps) {
        c.lora.setTraining(false);
        const ev = await evaluate(o, c, val, prompts, rc, false);
        rc.logMetrics(step, prefixed(ev.scalars, 'val/'));
        c.lora.setTraining(true);
      }
      if (step % o.checkpoint_every === 0 && step < o.steps) await save(step);
      await new Promise((r) => setImmediate(r)); // let signals and timers run between steps
    }
    bar.done();
    rc.setTags(scrStep.tags());
    scrStep.dispose();
    c.lora.setTraining(false);
    await save(step);
    const ev = await evaluate(o, c, val, prompts, rc, true);
    await writeAdapter(c.lora, rc);
    await rc.logArtifact('val_per_image.csv', perImageCsv(ev.perImage));
    return { ...prefixed(ev.scalars, 'val/'), ...baseline };
  } finally {
    prompts.dispose();
    optimizer.dispose();
    c.restorer.dispose();
    c.lora.dispose();
  }
}

/**
 * One SCR optimisation step as a `TrainStep` (gradients, in-graph clipping, AdamW as one compiled
 * TensorFlow function on native): the batch (lq, hq), the prompt context and the attention loss's
 * prepared targets (`AttentionLoss.prepare`: fixed-shape tensors, matched/unmatched counted in JS)
 * are the step's inputs, so two steps record the same program. An attention loss without
 * prepare/computePrepared (a third-party plugin) builds tensors from the targets inside the step,
 * which a compiled program would freeze: the step then runs eagerly, the reason logged and tagged.
 * LoRA dropout draws its seed in JS, so with dropout the program never settles and the step falls
 * back to eager after a few recordings (saying so).
 */
export class ScrStep {
  private readonly step: TrainStep;
  private readonly sclOn: boolean;
  /** the attention loss has the compile-friendly pair */
  private readonly prepared: boolean;
  /** why the step is eager although compile is auto (set before the first step) */
  private readonly eagerWhy?: string;
  /** attention map shapes per batch signature (one probe forward each) */
  private readonly shapes = new Map<string, AttentionShapes>();
  /** tensors the restorer keeps beyond the step's tidy (attention maps); disposed after each step */
  private kept: tf.Tensor[] = [];
  /** the eager path's targets and counts (a loss without prepare reads them inside the step) */
  private targets: readonly AttentionSample[] = [];
  private counts = { matched: 0, unmatched: 0 };

  constructor(private readonly o: ScrOptions, private readonly c: ScrComponents, optimizer: ReturnType<typeof makeOptimizer>, vars: Record<string, tf.Variable>, log: (line: string) => void) {
    this.sclOn = o.scl_weight > 0;
    this.prepared = typeof c.scl.prepare === 'function' && typeof c.scl.computePrepared === 'function';
    let mode: CompileMode = o.compile ?? 'auto';
    if (this.sclOn && !this.prepared && mode !== 'off') {
      this.eagerWhy = `the attention loss "${c.scl.type}" has no prepare/computePrepared (AttentionLoss contract), so its targets cannot be step inputs`;
      log(`compile scr: runs eagerly (${this.eagerWhy})`);
      mode = 'off';
    }
    this.step = new TrainStep(vars, optimizer, o.clip_grad_norm, (inputs) => this.loss(inputs), { mode, name: 'scr', log });
  }

  private loss(inputs: Record<string, tf.Tensor>): { loss: tf.Scalar; terms: Record<string, tf.Scalar> } {
    const { o, c } = this;
    const out = c.restorer.run(inputs.lq as tf.Tensor4D, inputs.context as tf.Tensor3D, this.sclOn ? { captureAttention: { layers: c.layers, mode: 'mean' } } : undefined);
    this.kept.push(...out.attention.values());
    const rest = c.loss.compute(out.image, inputs.hq as tf.Tensor4D);
    const terms: Record<string, tf.Scalar> = {};
    for (const [k, t] of Object.entries(rest.terms)) terms[`loss/${k}`] = t;
    let total: tf.Scalar = rest.total;
    if (this.sclOn) {
      let scl: tf.Scalar;
      if (this.prepared) {
        const prep: Record<string, tf.Tensor> = {};
        for (const [k, t] of Object.entries(inputs)) if (k.startsWith('scl:')) prep[k.slice(4)] = t;
        scl = (c.scl.computePrepared as NonNullable<AttentionLoss['computePrepared']>)(out.attention, prep).total;
      } else {
        const s = c.scl.compute(out.attention, this.targets);
        this.counts = { matched: s.matched, unmatched: s.unmatched };
        scl = s.total;
      }
      terms['loss/scl'] = scl;
      total = tf.add(total, tf.mul(scl, o.scl_weight));
    }
    return { loss: total, terms };
  }

  /** The attention map shapes for this batch signature: one forward pass (LoRA in eval mode, so no dropout draw moves the seed stream). */
  private attentionShapes(lq: tf.Tensor4D, context: tf.Tensor3D): AttentionShapes {
    const key = `${lq.shape.join('x')}/${context.shape.join('x')}`;
    let shapes = this.shapes.get(key);
    if (!shapes) {
      this.c.lora.setTraining(false);
      try {
        const found = new Map<string, [number, number, number]>();
        tf.tidy(() => {
          const out = this.c.restorer.run(lq, context, { captureAttention: { layers: this.c.layers, mode: 'mean' } });
          for (const [name, t] of out.attention) found.set(name, t.shape as [number, number, number]);
          tf.dispose([...out.attention.values()]);
        });
        shapes = found;
      } finally {
        this.c.lora.setTraining(true);
      }
      this.shapes.set(key, shapes);
    }
    return shapes;
  }

  /** One update; returns the step's scalar values (loss, its terms, SCL counts, grad norm). */
  run(batch: ImageBatch, context: tf.Tensor3D, targets: readonly AttentionSample[]): Record<string, number> {
    const inputs: Record<string, tf.Tensor> = { lq: batch.lq, hq: batch.hq, context };
    let prepared: tf.Tensor[] = [];
    if (this.sclOn) {
      if (this.prepared) {
        const p = (this.c.scl.prepare as NonNullable<AttentionLoss['prepare']>)(targets, this.attentionShapes(batch.lq, context));
        for (const [k, t] of Object.entries(p.tensors)) inputs[`scl:${k}`] = t;
        prepared = Object.values(p.tensors);
        this.counts = { matched: p.matched, unmatched: p.unmatched };
      } else {
        this.targets = targets;
      }
    }
    try {
      const r = this.step.run(inputs);
      const values: Record<string, number> = { loss: r.loss, grad_norm: r.gradNorm, ...r.terms };
      if (this.sclOn) {
        values['scl/matched'] = this.counts.matched;
        values['scl/unmatched'] = this.counts.unmatched;
      }
      return values;
    } finally {
      tf.dispose([...prepared, ...this.kept]);
      this.kept = [];
      this.targets = [];
    }
  }

  /** Run tags: `rass.compile.scr` (compiled | eager | recording) and why not compiled. */
  tags(): Record<string, string> {
    const tags = this.step.tags();
    if (this.eagerWhy) tags['rass.compile.scr.reason'] = this.eagerWhy;
    return tags;
  }

  dispose(): void {
    this.step.dispose();
  }
}

/**
 * Restore every validation image: metrics of the restored image and of the LQ input against HQ,
 * attention-mask agreement; with `artifacts`, the comparison grid and attention overlays.
 */
async function evaluate(o: ScrOptions, c: ScrComponents, val: BatchSource, prompts: PromptCache, rc: RunContext, artifacts: boolean): Promise<Evaluation> {
  const n = Math.min(val.length, o.val.size ?? val.length);
  for (const m of [...c.restoredMetrics, ...c.lqMetrics]) m.reset();
  let agree = { sum: 0, count: 0 };
  const grid: Picture[][] = [];
  const attentionRows: Picture[][] = [];
  const ids: string[] = [];
  for (let start = 0; start < n; start += o.val.batch_size) {
    const items = Array.from({ length: Math.min(o.val.batch_size, n - start) }, (_, j) => ({ epoch: 0, index: start + j }));
    const batch = await val.batch(items);
    const { prompts: texts, targets } = promptsAndTargets(batch.samples, c.tagger, c.restorer.textEncoder, c.valData.classNames, c.valData.ignoreIndex);
    const context = prompts.batch(texts);
    // the recorder keeps the attention maps beyond the tidy; the image is its result
    let attention = new Map<string, tf.Tensor>();
    const image = tf.tidy(() => {
      const r = c.restorer.run(batch.lq, context, { captureAttention: { layers: c.layers, mode: 'mean' } });
      attention = r.attention as Map<string, tf.Tensor>;
      return r.image;
    });
    const out = { image, attention };
    const a = attentionAgreement(out.attention, targets);
    agree = { sum: agree.sum + a.sum, count: agree.count + a.count };
    const restored = toUint8Images(out.image);
    const lq = toUint8Images(batch.lq);
    const hq = toUint8Images(batch.hq);
    const img = (px: Uint8Array) => ({ data: px, height: batch.height, width: batch.width, channels: 3 });
    const batchIds = batch.samples.map((s) => s.id);
    ids.push(...batchIds);
    for (const m of c.restoredMetrics) m.update({ ids: batchIds, restored: restored.map(img), reference: hq.map(img) });
    for (const m of c.lqMetrics) m.update({ ids: batchIds, restored: lq.map(img), reference: hq.map(img) });
    if (artifacts) {
      for (let i = 0; i < batch.samples.length && grid.length < o.val.images; i++) {
        const pic = (px: Uint8Array): Picture => ({ pixels: px, height: batch.height, width: batch.width });
        grid.push([pic(lq[i] as Uint8Array), pic(restored[i] as Uint8Array), pic(hq[i] as Uint8Array)]);
        if (attentionRows.length < 2) attentionRows.push(...attentionPictures(out.attention, targets[i] as AttentionSample, pic(restored[i] as Uint8Array), i));
      }
    }
    tf.dispose([out.image, ...out.attention.values(), batch.hq, batch.lq, context]);
  }
  const scalars: Record<string, number> = {};
  const perImage = ids.map((id) => ({ id, values: {} as Record<string, number> }));
  const collect = (metrics: Metric[], prefix: string) => {
    for (const m of metrics) {
      const r = m.compute();
      for (const [k, v] of Object.entries(r.scalars)) scalars[`${prefix}${k}`] = v;
      r.perSample?.forEach((s, i) => Object.assign((perImage[i] as { values: Record<string, number> }).values, prefixed(s.values, prefix)));
    }
  };
  collect(c.restoredMetrics, '');
  collect(c.lqMetrics, 'lq_');
  scalars.attn_agreement = agree.count > 0 ? agree.sum / agree.count : NaN;
  if (artifacts) {
    if (grid.length) await rc.logArtifact('images/val_grid.png', gridPng(grid));
    if (attentionRows.length) await rc.logArtifact('images/attention.png', gridPng(attentionRows));
  }
  return { scalars, perImage };
}

/** One row per matched tag: the restored image, the tag's mask, then its attention overlay per captured layer. */
function attentionPictures(attention: ReadonlyMap<string, tf.Tensor>, target: AttentionSample, restored: Picture, i: number): Picture[][] {
  const rows: Picture[][] = [];
  for (const t of target.targets) {
    const row: Picture[] = [restored, maskPicture(t.mask, target.height, target.width)];
    for (const map of attention.values()) {
      const [, nq, nk] = map.shape as [number, number, number];
      const [h, w] = mapGrid(nq, target.height, target.width);
      const sel = tf.tidy(() => tf.sum(tf.gather(tf.reshape(tf.slice(map, [i, 0, 0], [1, nq, nk]), [nq, nk]), t.tokens, 1), 1));
      const v = sel.dataSync() as Float32Array;
      sel.dispose();
      row.push(overlay(restored, v, h, w));
    }
    rows.push(row);
  }
  return rows;
}

async function writeAdapter(lora: Adapter, rc: RunContext): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rass-adapter-'));
  try {
    lora.save(dir);
    for (const f of readdirSync(dir).sort()) await rc.logArtifact(`adapters/${lora.name}/${f}`, readFileSync(join(dir, f)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function perImageCsv(rows: readonly { id: string; values: Record<string, number> }[]): string {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r.values)))].sort();
  return [['id', ...cols].join(','), ...rows.map((r) => [r.id, ...cols.map((k) => String(r.values[k] ?? ''))].join(','))].join('\n') + '\n';
}

function prefixed(values: Record<string, number>, prefix: string): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`${prefix}${k}`, v]));
}

