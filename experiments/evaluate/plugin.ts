import { definePlugin, componentSchema, finishedRun, tf, UserError, type ComponentNode, type Experiment, type PluginContext, type RunContext } from '../../framework/api.js';
import type { Degradation, Metric, OneStepRestorer, SegDataset, SegSample, Tagger } from '../../framework/api.js';
import { BatchSource, toUint8Images } from '../common/data.js';
import { PromptCache } from '../common/prompts.js';
import { gridPng, labelPicture, type Picture } from '../common/images.js';
import { loadSegmenter, type LoadedSegmenter } from '../rass/segmenter.js';
import { imageScores } from '../rass/train.js';
import { loadRestorer } from '../scr/restorer.js';
import { checkTaggerCovers } from '../common/attention.js';
import { cropSchema } from '../common/train.js';

const schemaProperties = {
  segmenter: { type: 'string', description: 'a finished run that saved a segmenter (experiment/rass): id, id prefix or directory' },
  restorer: { type: 'string', description: 'restore-then-segment: a finished experiment/scr run whose restorer runs before the segmenter' },
  dataset: componentSchema('dataset'),
  degradation: componentSchema('degradation', 'makes the LQ input (fixed per sample); omit to evaluate on clean images or a paired dataset\'s LQ'),
  input: { enum: ['lq', 'hq'], default: 'lq', description: 'segment the degraded (lq) or the clean (hq) image' },
  tagger: { ...componentSchema('tagger'), default: { type: 'tagger/label-map' }, description: 'prompt tags (oracle label tags, or tagger/tags-file with a tagging model\'s output)' },
  crop: cropSchema,
  batch_size: { type: 'integer', minimum: 1, default: 8 },
  size: { type: 'integer', minimum: 1, description: 'evaluate the first N samples (default: all)' },
  images: { type: 'integer', minimum: 0, default: 4, description: 'images in the prediction grid' },
  metrics: { type: 'array', items: componentSchema('metric'), description: 'default: metric/miou and metric/miou-mmseg over the dataset classes' },
  restoration_metrics: { type: 'array', items: componentSchema('metric'), default: [{ type: 'metric/psnr' }, { type: 'metric/ssim' }], description: 'with a restorer: restored vs clean image' },
} as const;

export const evaluateExperiment = definePlugin({
  kind: 'experiment',
  name: 'evaluate',
  description: 'evaluate a trained segmenter (a RASS run) on any dataset + degradation + tagger; with `restorer`, restore-then-segment (R2S)',
  docs: `Rebuilds the segmenter a finished experiment/rass run saved (artifacts/model: backbone and SCR adapter as recorded,
Seg adapter, projections, head) and segments \`dataset\` (degraded by \`degradation\` when \`input: lq\`). With \`restorer\`
(a finished experiment/scr run) each LQ image is first restored by that run's one-step restorer (R2S in the RASS paper).
Writes mIoU in both conventions, pixel accuracy, per-class and per-image CSVs and a prediction grid.`,
  schema: { type: 'object', additionalProperties: false, required: ['segmenter', 'dataset'], properties: schemaProperties } as const,
  async create(o, ctx): Promise<Experiment> {
    return buildEvaluation(o as unknown as EvalOptions, ctx);
  },
});

export const restoreThenSegmentExperiment = definePlugin({
  kind: 'experiment',
  name: 'restore-then-segment',
  description: 'R2S baseline: restore LQ images with an SCR run\'s restorer, then segment them with a segmenter run',
  docs: 'experiment/evaluate with a required `restorer` (see its docs).',
  schema: { type: 'object', additionalProperties: false, required: ['segmenter', 'restorer', 'dataset'], properties: schemaProperties } as const,
  async create(o, ctx): Promise<Experiment> {
    return buildEvaluation(o as unknown as EvalOptions, ctx);
  },
});

interface EvalOptions {
  segmenter: string;
  restorer?: string;
  dataset: ComponentNode;
  degradation?: ComponentNode;
  input: 'lq' | 'hq';
  tagger: ComponentNode;
  crop?: [number, number];
  batch_size: number;
  size?: number;
  images: number;
  metrics?: ComponentNode[];
  restoration_metrics: ComponentNode[];
}

async function buildEvaluation(o: EvalOptions, ctx: PluginContext): Promise<Experiment> {
  const runsDir = ctx.services.runsDir as string;
  const cwd = (ctx.services.cwd as string | undefined) ?? process.cwd();
  const segRun = finishedRun(o.segmenter, { runsDir, cwd, where: `${ctx.path}.segmenter`, artifacts: ['model/model.json', 'model/weights.safetensors'] });
  const resRun = o.restorer ? finishedRun(o.restorer, { runsDir, cwd, where: `${ctx.path}.restorer`, artifacts: ['adapters'] }) : null;
  if (o.restorer && o.input === 'hq') throw new UserError(`${ctx.path}.input: restore-then-segment restores LQ images; input must be lq`);
  const build = <T>(node: ComponentNode, opts: { expectKind: 'backbone' | 'adapter' | 'head'; path: string }) => ctx.build<T>(node, opts);
  const dataset = await ctx.build<SegDataset>(o.dataset, { expectKind: 'dataset', path: `${ctx.path}.dataset` });
  const degradation = o.degradation ? await ctx.build<Degradation>(o.degradation, { expectKind: 'degradation', path: `${ctx.path}.degradation` }) : null;
  const tagger = await ctx.build<Tagger>(o.tagger, { expectKind: 'tagger', path: `${ctx.path}.tagger` });
  checkTaggerCovers(tagger, dataset, `${ctx.path}.tagger (dataset)`);
  const segmenter = await loadSegmenter(segRun.dir, build, `${ctx.path}.segmenter`);
  let restorer: OneStepRestorer | null = null;
  try {
    if (dataset.classNames.length > segmenter.meta.num_classes) {
      throw new UserError(`${ctx.path}.dataset: ${dataset.classNames.length} classes, but the segmenter of ${segRun.runId} predicts ${segmenter.meta.num_classes}`);
    }
    restorer = resRun ? await loadRestorer(resRun.dir, build, `${ctx.path}.restorer`) : null;
    const nodes = o.metrics ?? [
      { type: 'metric/miou', class_names: [...dataset.classNames], ignore_index: dataset.ignoreIndex },
      { type: 'metric/miou-mmseg', class_names: [...dataset.classNames], ignore_index: dataset.ignoreIndex },
    ];
    const metrics = await Promise.all(nodes.map((m, i) => ctx.build<Metric>(m, { expectKind: 'metric', path: `${ctx.path}.metrics[${i}]` })));
    const resMetrics = restorer ? await Promise.all(o.restoration_metrics.map((m, i) => ctx.build<Metric>(m, { expectKind: 'metric', path: `${ctx.path}.restoration_metrics[${i}]` }))) : [];
    const r = restorer;
    return { run: (rc) => evaluate(o, { dataset, degradation, tagger, segmenter, restorer: r, metrics, resMetrics, segRunId: segRun.runId, resRunId: resRun?.runId }, rc) };
  } catch (e) {
    segmenter.dispose();
    restorer?.dispose();
    throw e;
  }
}

interface Parts {
  dataset: SegDataset;
  degradation: Degradation | null;
  tagger: Tagger;
  segmenter: LoadedSegmenter;
  restorer: OneStepRestorer | null;
  metrics: Metric[];
  resMetrics: Metric[];
  segRunId: string;
  resRunId?: string;
}

async function evaluate(o: EvalOptions, p: Parts, rc: RunContext): Promise<Record<string, number>> {
  const source = new BatchSource({ dataset: p.dataset, degradation: o.input === 'lq' ? p.degradation : null, seed: rc.seed, split: 'val', crop: o.crop, randomCrop: false, where: 'experiment' });
  const segPrompts = new PromptCache(p.segmenter.backbone.textEncoder);
  const resPrompts = p.restorer ? new PromptCache(p.restorer.textEncoder) : null;
  try {
    rc.logParams({ segmenter_run: p.segRunId, restorer_run: p.resRunId ?? 'none', input: o.input });
    const n = Math.min(source.length, o.size ?? source.length);
    const perImage: (string | number)[][] = [];
    const grid: Picture[][] = [];
    const bar = rc.progress('evaluate', n);
    for (let start = 0; start < n; start += o.batch_size) {
      if (rc.signal.aborted) throw new Error('stopped');
      const batch = await source.batch(Array.from({ length: Math.min(o.batch_size, n - start) }, (_, j) => ({ epoch: 0, index: start + j })));
      const tags = batch.samples.map((s) => p.tagger.tagsFor(s, p.dataset.classNames, p.dataset.ignoreIndex).join(', '));
      let input = o.input === 'lq' ? batch.lq : batch.hq;
      let restored: tf.Tensor4D | null = null;
      if (p.restorer && resPrompts) {
        const ctx = resPrompts.batch(tags);
        const r = p.restorer;
        restored = tf.tidy(() => r.run(input, ctx).image);
        ctx.dispose();
        input = restored;
        const img = (px: Uint8Array) => ({ data: px, height: batch.height, width: batch.width, channels: 3 });
        const ids = batch.samples.map((s) => s.id);
        const rs = toUint8Images(restored);
        const hq = toUint8Images(batch.hq);
        for (const m of p.resMetrics) m.update({ ids, restored: rs.map(img), reference: hq.map(img) });
      }
      const context = segPrompts.batch(tags);
      const pred = p.segmenter.predict(input, context, batch.height, batch.width);
      const gts = batch.samples.map((s: SegSample) => s.label ?? new Uint8Array(batch.height * batch.width).fill(p.dataset.ignoreIndex));
      const map = (data: ArrayLike<number>) => ({ data, height: batch.height, width: batch.width });
      for (const m of p.metrics) m.update({ ids: batch.samples.map((s) => s.id), segPred: pred.map(map), segGt: gts.map(map) });
      pred.forEach((lab, i) => {
        const sc = imageScores(lab, gts[i] as Uint8Array, p.segmenter.meta.num_classes, p.dataset.ignoreIndex);
        perImage.push([(batch.samples[i] as SegSample).id, sc.miou, sc.pacc]);
      });
      if (grid.length < o.images) {
        const shown = toUint8Images(input);
        const raw = toUint8Images(o.input === 'lq' ? batch.lq : batch.hq);
        for (let i = 0; i < pred.length && grid.length < o.images; i++) {
          const pic = (px: Uint8Array): Picture => ({ pixels: px, height: batch.height, width: batch.width });
          const row = [pic(raw[i] as Uint8Array)];
          if (restored) row.push(pic(shown[i] as Uint8Array));
          row.push(labelPicture(pred[i] as Uint8Array, batch.height, batch.width, p.dataset.ignoreIndex), labelPicture(gts[i] as Uint8Array, batch.height, batch.width, p.dataset.ignoreIndex));
          grid.push(row);
        }
      }
      tf.dispose([batch.hq, batch.lq, context, ...(restored ? [restored] : [])]);
      bar.tick(batch.samples.length);
    }
    bar.done();
    const scalars: Record<string, number> = {};
    for (const m of p.metrics) {
      const r = m.compute();
      const suffix = m.name === 'miou' ? '' : `_${m.name.replace(/^miou-/, '')}`;
      for (const [k, v] of Object.entries(r.scalars)) if (!k.includes('/')) scalars[`${k}${suffix}`] = v;
      for (const t of r.tables ?? []) await rc.logArtifact(`${m.name}_${t.name}.csv`, [t.columns.join(','), ...t.rows.map((row) => row.join(','))].join('\n') + '\n');
    }
    for (const m of p.resMetrics) for (const [k, v] of Object.entries(m.compute().scalars)) scalars[`restored/${k}`] = v;
    await rc.logArtifact('per_image.csv', ['id,miou,pacc', ...perImage.map((r) => r.join(','))].join('\n') + '\n');
    if (grid.length) await rc.logArtifact('images/predictions.png', gridPng(grid));
    return scalars;
  } finally {
    segPrompts.dispose();
    resPrompts?.dispose();
    p.segmenter.dispose();
    p.restorer?.dispose();
  }
}
