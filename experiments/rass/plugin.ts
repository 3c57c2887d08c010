import { definePlugin, componentSchema, UserError, type ComponentNode, type Experiment, type PluginContext } from '../../framework/api.js';
import type { Adapter, Degradation, Metric, OneStepRestorer, SegDataset, SegHead, SegLoss, Tagger } from '../../framework/api.js';
import { loopProperties, optimizerSchema, scheduleSchema, trainDataProperties, valDataProperties } from '../common/train.js';
import { SCR_LORA_TARGETS } from '../scr/plugin.js';
import { runRass, type RassComponents, type RassOptions } from './train.js';
import { checkTaggerCovers } from '../common/attention.js';
import { compileOptionSchema } from '../common/train-step.js';

/** The options of experiment/rass (experiment/seg-baseline takes them without the SCR adapter). */
export const RASS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['train', 'val', 'head', 'loss'],
  properties: {
    backbone: { ...componentSchema('backbone'), default: { type: 'backbone/one-step', timestep: 1 }, description: 'backbone/one-step (its UNet is what the adapters wrap)' },
    scr_adapter: componentSchema('adapter', 'the SCR adapter to load (adapter/lora with `load:`); omit for no SCR prior'),
    merge_scr: { type: 'boolean', default: true, description: 'merge the SCR adapter into the UNet weights (true) or keep it as a frozen adapter (false)' },
    seg_lora: {
      ...componentSchema('adapter'),
      default: { type: 'adapter/lora', name: 'seg', r: 4, alpha: 4, init: 'gaussian', target_modules: SCR_LORA_TARGETS },
      description: 'the new Seg LoRA (trainable)',
    },
    features: {
      type: 'array',
      items: { type: 'string' },
      minItems: 1,
      default: ['vae.encoder.down_blocks.1', 'unet.up_blocks.0', 'unet.up_blocks.1'],
      description: 'backbone taps feeding the head (vae.encoder.*, unet.*, vae.decoder.*)',
    },
    projection_dim: { type: 'integer', minimum: 1, default: 64, description: 'channels of each 1x1 projection (= the head inChannels)' },
    head: componentSchema('head', 'segmentation head; its inChannels must all equal projection_dim'),
    loss: componentSchema('loss', 'segmentation loss for the head (loss/mask2former, loss/per-pixel)'),
    train: {
      type: 'object',
      additionalProperties: false,
      required: ['dataset'],
      properties: { ...trainDataProperties, input: { enum: ['lq', 'hq'], default: 'lq', description: 'train on degraded (lq: RASS, FT) or clean (hq: DT) images' } },
    },
    val: {
      type: 'object',
      additionalProperties: false,
      required: ['dataset'],
      properties: { ...valDataProperties, splits: { type: 'array', items: { enum: ['lq', 'hq'] }, minItems: 1, default: ['lq', 'hq'], description: 'evaluate on the degraded (lq) and/or clean (hq) inputs' } },
    },
    tagger: { ...componentSchema('tagger'), default: { type: 'tagger/label-map' }, description: 'prompt tags (training and validation)' },
    val_tagger: componentSchema('tagger', 'prompt tags at validation (default: tagger); e.g. tagger/tags-file with RAM tags'),
    ...loopProperties,
    optimizer: { ...optimizerSchema, default: { lr: 1e-4, weight_decay: 0.05 } },
    backbone_lr_mult: { type: 'number', minimum: 0, default: 0.1 },
    schedule: { ...scheduleSchema, default: { type: 'poly', power: 0.9 } },
    clip_grad_norm: { type: 'number', exclusiveMinimum: 0, default: 0.01, description: 'clip all gradients to this global norm (RASS: 0.01)' },
    compile: compileOptionSchema(', or with a segmentation loss that has no prepare/computePrepared'),
    metrics: {
      type: 'array',
      items: componentSchema('metric'),
      description: 'segmentation metrics (default: metric/miou and metric/miou-mmseg over the dataset classes)',
    },
  },
} as const;

export const rassExperiment = definePlugin({
  kind: 'experiment',
  name: 'rass',
  description: 'RASS: the (SCR-adapted) diffusion model as a segmentation backbone: merged SCR LoRA, a new Seg LoRA, conv_in and a segmentation head trained on LQ images',
  docs: `Restoration Adaptation for Semantic Segmentation (stage 2). The backbone (backbone/one-step at a small
timestep, 1 by default) runs the input once through the VAE encoder and the UNet (no denoising loop). An SCR
adapter (\`scr_adapter\`, e.g. {type: adapter/lora, name: scr, load: <run>/artifacts/adapters/scr}) is loaded and,
with \`merge_scr: true\`, merged into the UNet weights (merge_and_unload); a new Seg LoRA (\`seg_lora\`) is added.
Trainable: the Seg LoRA, the backbone parameters its nodes mark trainable (e.g. unet \`trainable: [conv_in\\\\..*]\`),
the 1x1 projections of the tapped \`features\` (projections of equal stride summed; head strides no tap provides are
made by 2x average pooling of the next finer level) and the \`head\`. Optimiser: backbone parameters (Seg LoRA,
conv_in) at \`backbone_lr_mult\` x lr; clipping by the norm of all gradients.

\`compile: auto\` (default): on the native backend each step runs as two compiled TensorFlow functions: the
forward pass alone, whose output the loss's \`prepare\` reads on the host (Mask2Former's Hungarian matching and
uncertainty point selection), then forward + loss + backward + clipping + AdamW with that plan as inputs. Eager
elsewhere (wasm/cpu, \`compile: off\`, a loss without prepare/computePrepared, LoRA dropout), the reason logged
once and tagged \`rass.compile.rass.reason\`. \`compile: xla\` runs both functions through XLA: 1.9x faster on the
tiny prior (6.2 vs 3.2 steps/s), about twice the peak memory, XLA's compilation once at the first compiled step.

\`train.input: lq\` trains on degraded images (RASS, FT baseline); \`hq\` on clean ones (the DT baseline).
Validation on the degraded split (\`val_lq/*\`) and the clean one (\`val_hq/*\`): mIoU in detectron2's and
mmseg's conventions, pixel accuracy, per-class IoU (CSV), per-image mIoU (CSV) and LQ / prediction / ground truth
images. The trained model is saved as an artifact (\`model/\`: Seg adapter in PEFT format, projections, head and
trained backbone parameters) for experiment/evaluate and restore-then-segment.`,
  schema: RASS_SCHEMA,
  async create(o, ctx): Promise<Experiment> {
    const opts = o as unknown as RassOptions;
    const c = await buildComponents(opts, ctx);
    return { run: (rc) => runRass(opts, c, rc) };
  },
});

export async function buildComponents(o: RassOptions, ctx: PluginContext): Promise<RassComponents> {
  const owned: { dispose(): void }[] = [];
  const build = async <T>(node: ComponentNode, kind: 'backbone' | 'adapter' | 'dataset' | 'degradation' | 'tagger' | 'loss' | 'metric' | 'head', key: string, check: (v: T) => boolean, what: string): Promise<T> => {
    const v = await ctx.build<T>(node, { expectKind: kind, path: `${ctx.path}.${key}` });
    if (!v || !check(v)) throw new UserError(`${ctx.path}.${key}: ${node.type} does not build ${what}`);
    return v;
  };
  try {
    const backbone = await build<OneStepRestorer>(o.backbone, 'backbone', 'backbone', (v) => typeof v.features === 'function' && !!v.unet, 'a diffusion feature backbone (backbone/one-step)');
    owned.push(backbone);
    const unknown = o.features.filter((f) => !backbone.tapNames().includes(f));
    if (unknown.length) throw new UserError(`${ctx.path}.features: unknown tap(s) ${unknown.join(', ')}; this backbone has: ${backbone.tapNames().join(', ')}`);
    let scrMerged = false;
    let scr: Adapter | null = null;
    if (o.scr_adapter) {
      scr = await build<Adapter>(o.scr_adapter, 'adapter', 'scr_adapter', (v) => typeof v.attach === 'function', 'an adapter');
      try {
        scr.attach(backbone.unet.store);
      } catch (e) {
        throw new UserError(`${ctx.path}.scr_adapter: the SCR adapter does not fit this backbone's UNet (${(e as Error).message})`, { cause: e });
      }
      if (o.merge_scr) {
        scr.mergeAndUnload();
        scrMerged = true;
        scr = null;
      } else {
        scr.setTraining(false);
        owned.push(scr);
      }
    }
    const seg = await build<Adapter>(o.seg_lora, 'adapter', 'seg_lora', (v) => typeof v.attach === 'function' && typeof v.namedVariables === 'function', 'an adapter');
    seg.attach(backbone.unet.store);
    owned.push(seg);
    const head = await build<SegHead>(o.head, 'head', 'head', (v) => typeof v.forward === 'function' && typeof v.semantic === 'function', 'a segmentation head');
    owned.push(head);
    if (head.inChannels.some((ch) => ch !== o.projection_dim)) {
      throw new UserError(`${ctx.path}.head.inChannels: ${JSON.stringify(head.inChannels)} must all be projection_dim (${o.projection_dim}): every tapped feature is projected to projection_dim channels`);
    }
    const loss = await build<SegLoss>(o.loss, 'loss', 'loss', (v) => typeof v.compute === 'function', 'a segmentation loss');
    const trainData = await build<SegDataset>(o.train.dataset, 'dataset', 'train.dataset', (v) => typeof v.get === 'function', 'a dataset');
    const valData = await build<SegDataset>(o.val.dataset, 'dataset', 'val.dataset', (v) => typeof v.get === 'function', 'a dataset');
    if (trainData.classNames.length > head.numClasses) {
      throw new UserError(`${ctx.path}.head: the head has ${head.numClasses} classes but the training dataset has ${trainData.classNames.length} (${trainData.classNames.slice(0, 4).join(', ')}, ...); set numClasses to ${trainData.classNames.length}`);
    }
    const deg = (node: ComponentNode | undefined, key: string) => (node ? build<Degradation>(node, 'degradation', key, (v) => typeof v.apply === 'function', 'a degradation') : Promise.resolve(null));
    const trainDeg = await deg(o.train.degradation, 'train.degradation');
    const valDeg = await deg(o.val.degradation, 'val.degradation');
    if (o.train.input === 'lq' && !trainDeg) ctx.log.warn(`${ctx.path}.train: input lq without a degradation: training on the dataset's stored LQ images, or on HQ when it has none`);
    const tagger = await build<Tagger>(o.tagger, 'tagger', 'tagger', (v) => typeof v.tagsFor === 'function', 'a tagger');
    const valTagger = o.val_tagger ? await build<Tagger>(o.val_tagger, 'tagger', 'val_tagger', (v) => typeof v.tagsFor === 'function', 'a tagger') : tagger;
    checkTaggerCovers(tagger, trainData, `${ctx.path}.tagger (train.dataset)`);
    checkTaggerCovers(valTagger, valData, `${ctx.path}.${o.val_tagger ? 'val_tagger' : 'tagger'} (val.dataset)`);
    const metricNodes = o.metrics ?? [
      { type: 'metric/miou', class_names: [...valData.classNames], ignore_index: valData.ignoreIndex },
      { type: 'metric/miou-mmseg', class_names: [...valData.classNames], ignore_index: valData.ignoreIndex },
    ];
    const metrics = async (split: string) => Promise.all(metricNodes.map((m, i) => build<Metric>(m, 'metric', `metrics[${i}]`, (v) => typeof v.update === 'function', `a metric (${split})`)));
    const splitMetrics: Record<string, Metric[]> = {};
    for (const s of o.val.splits) splitMetrics[s] = await metrics(s);
    return { backbone, scr, scrMerged, seg, head, loss, trainData, valData, trainDeg, valDeg, tagger, valTagger, metrics: splitMetrics };
  } catch (e) {
    for (const b of owned.reverse()) b.dispose();
    throw e;
  }
}
