import { definePlugin, componentSchema, UserError, type ComponentNode, type Experiment, type PluginContext } from '../../framework/api.js';
import { compileOptionSchema } from '../common/train-step.js';
import type { Adapter, AttentionLoss, ImageLoss, Metric, OneStepRestorer, SegDataset, Tagger, Degradation } from '../../framework/api.js';
import { loopProperties, optimizerSchema, scheduleSchema, trainDataProperties, valDataProperties } from '../common/train.js';
import { runScr, type ScrComponents, type ScrOptions } from './train.js';
import { checkTaggerCovers } from '../common/attention.js';

/** OSEDiff's LoRA targets on the UNet (docs/method.md, LoRA), as PEFT target_modules. */
export const SCR_LORA_TARGETS = ['to_q', 'to_k', 'to_v', 'to_out.0', 'conv', 'conv1', 'conv2', 'conv_in', 'conv_shortcut', 'proj_in', 'proj_out', 'ff.net.0.proj', 'ff.net.2'];


export const scrExperiment = definePlugin({
  kind: 'experiment',
  name: 'scr',
  description: 'SCR: train a restoration LoRA on a one-step diffusion restorer with a restoration loss + lambda x the Semantic-Constraint Loss on cross-attention maps',
  docs: `Semantic-Constrained Restoration (stage 1 of RASS). A pretrained latent diffusion model restores an LQ image
in one step (\`restorer\`: backbone/one-step); a new LoRA (\`lora\`, named \`scr\`) on the UNet is trained with
\`loss\` (restoration: any loss/* with the image contract, e.g. loss/weighted-sum of mse + lpips) plus
\`scl_weight\` x \`scl\` (loss/scl: the UNet's cross-attention map of each tag token is pushed toward that tag's
class mask). The prompt is the sample's tags (\`tagger\`) joined by ", ".

Training pairs: HQ from \`train.dataset\`, LQ made on the fly by \`train.degradation\` (seeded per sample and
epoch, so a sample's LQ is the same on resume) or read from a paired dataset. Validation (\`val\`) runs at step 0
(the zero-LoRA restorer: B = 0 makes a fresh adapter a no-op), every \`eval_every\` steps and at the end:
PSNR/SSIM (\`metrics\`) of the restored image and of the LQ input against HQ, and the attention-mask agreement
(mean over matched tags and captured layers of the share of a tag's attention inside its mask).

Artifacts: \`adapters/scr/\` (PEFT format: loads with peft onto the diffusers UNet), \`images/val_grid.png\`
(rows: validation images; columns: LQ, restored, HQ), \`images/attention.png\` (per tag: mask and attention
overlays per layer), \`val_per_image.csv\`. Checkpoints hold the adapter, optimiser state and step: a killed
run resumes to the same final metrics.

\`compile: auto\` (default): on the native backend each training step (forward, SCL, backward, clipping,
AdamW) runs as one compiled TensorFlow function, with the batch, the prompt context and the attention loss's
prepared targets (\`AttentionLoss.prepare\`) as its inputs; an attention loss without \`prepare\` (or another
backend, or LoRA dropout) runs the steps eagerly, the reason logged once and tagged \`rass.compile.scr.reason\`.
\`compile: xla\` runs that function through XLA: 1.8x faster on the tiny prior (10.1 vs 5.7 steps/s), about
twice the peak memory, and XLA's compilation once at the first compiled step (a 60-step run comes out slower).`,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['train', 'val'],
    properties: {
      restorer: { ...componentSchema('backbone'), default: { type: 'backbone/one-step' }, description: 'the one-step restorer (backbone/one-step with unet/vae/text_encoder nodes)' },
      lora: {
        ...componentSchema('adapter'),
        default: { type: 'adapter/lora', name: 'scr', r: 4, alpha: 4, init: 'gaussian', target_modules: SCR_LORA_TARGETS },
        description: 'the SCR adapter on the UNet',
      },
      train: { type: 'object', additionalProperties: false, required: ['dataset'], properties: trainDataProperties },
      val: { type: 'object', additionalProperties: false, required: ['dataset'], properties: valDataProperties },
      tagger: { ...componentSchema('tagger'), default: { type: 'tagger/label-map' }, description: 'the prompt: tags per sample, and tag -> class masks for SCL' },
      loss: { ...componentSchema('loss'), default: { type: 'loss/mse' }, description: 'restoration loss (image contract: pred, target in [-1, 1])' },
      scl: { ...componentSchema('loss'), default: { type: 'loss/scl' }, description: 'the Semantic-Constraint Loss (attention contract)' },
      scl_weight: { type: 'number', minimum: 0, default: 1, description: 'lambda: total = restoration + lambda x SCL (0: plain restoration LoRA; SCL still measured)' },
      attention_layers: {
        type: 'array',
        items: { type: 'string' },
        minItems: 1,
        description: 'attention layers (full-match regexes) measured for the agreement metric; default: the SCL loss\'s layers',
      },
      ...loopProperties,
      optimizer: optimizerSchema,
      schedule: scheduleSchema,
      clip_grad_norm: { type: 'number', exclusiveMinimum: 0, default: 1, description: 'clip the adapter gradients to this global norm' },
      compile: compileOptionSchema(', or with an attention loss that has no prepare/computePrepared'),
      metrics: {
        type: 'array',
        items: componentSchema('metric'),
        default: [{ type: 'metric/psnr' }, { type: 'metric/ssim' }],
        description: 'restoration metrics (restored and LQ vs HQ)',
      },
    },
  } as const,
  async create(o, ctx): Promise<Experiment> {
    const c = await buildComponents(o as unknown as ScrOptions, ctx);
    return { run: (rc) => runScr(o as unknown as ScrOptions, c, rc) };
  },
});

/** Build every component of the run (before the run directory exists: bad input fails here). */
async function buildComponents(o: ScrOptions, ctx: PluginContext): Promise<ScrComponents> {
  const built: { dispose(): void }[] = [];
  const build = async <T>(node: ComponentNode, kind: 'backbone' | 'adapter' | 'dataset' | 'degradation' | 'tagger' | 'loss' | 'metric', key: string, check: (v: T) => boolean, what: string): Promise<T> => {
    const v = await ctx.build<T>(node, { expectKind: kind, path: `${ctx.path}.${key}` });
    if (!v || !check(v)) throw new UserError(`${ctx.path}.${key}: ${node.type} does not build ${what}`);
    return v;
  };
  try {
    const restorer = await build<OneStepRestorer>(o.restorer, 'backbone', 'restorer', (v) => typeof v.run === 'function' && !!v.unet && !!v.textEncoder, 'a one-step restorer (backbone/one-step)');
    built.push(restorer);
    const lora = await build<Adapter>(o.lora, 'adapter', 'lora', (v) => typeof v.attach === 'function' && typeof v.namedVariables === 'function', 'an adapter');
    lora.attach(restorer.unet.store); // a target that matches no module fails here, before the run
    built.push(lora);
    const trainData = await build<SegDataset>(o.train.dataset, 'dataset', 'train.dataset', (v) => typeof v.get === 'function', 'a dataset');
    const valData = await build<SegDataset>(o.val.dataset, 'dataset', 'val.dataset', (v) => typeof v.get === 'function', 'a dataset');
    const deg = (node: ComponentNode | undefined, key: string) => (node ? build<Degradation>(node, 'degradation', key, (v) => typeof v.apply === 'function', 'a degradation') : Promise.resolve(null));
    const trainDeg = await deg(o.train.degradation, 'train.degradation');
    const valDeg = await deg(o.val.degradation, 'val.degradation');
    const tagger = await build<Tagger>(o.tagger, 'tagger', 'tagger', (v) => typeof v.tagsFor === 'function' && typeof v.maskForTag === 'function', 'a tagger');
    checkTaggerCovers(tagger, trainData, `${ctx.path}.tagger (train.dataset)`);
    checkTaggerCovers(tagger, valData, `${ctx.path}.tagger (val.dataset)`);
    const loss = await build<ImageLoss>(o.loss, 'loss', 'loss', (v) => typeof v.compute === 'function', 'a restoration loss');
    const scl = await build<AttentionLoss>(o.scl, 'loss', 'scl', (v) => typeof v.compute === 'function' && Array.isArray(v.layers), 'an attention loss (loss/scl)');
    const metrics = async (tag: string) => Promise.all(o.metrics.map((m, i) => build<Metric>(m, 'metric', `metrics[${i}]`, (v) => typeof v.update === 'function', `a metric (${tag})`)));
    const layers = o.attention_layers ?? scl.layers;
    checkAttentionLayers(restorer, layers, o.attention_layers ? `${ctx.path}.attention_layers` : `${ctx.path}.scl.layers`);
    return { restorer, lora, trainData, valData, trainDeg, valDeg, tagger, loss, scl, layers, restoredMetrics: await metrics('restored'), lqMetrics: await metrics('LQ') };
  } catch (e) {
    for (const b of built.reverse()) b.dispose();
    throw e;
  }
}

/**
 * Attention layers are named like the modules that hold their projections
 * (`down_blocks.0.attentions.0.transformer_blocks.0.attn2` holds `.to_q`): a pattern that matches
 * none of them would capture nothing and make SCL silently zero.
 */
function checkAttentionLayers(restorer: OneStepRestorer, patterns: readonly string[], where: string): void {
  const names = [...restorer.unet.store.modules.keys()].filter((m) => m.endsWith('.to_q')).map((m) => m.slice(0, -'.to_q'.length));
  for (const p of patterns) {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${p})$`);
    } catch (e) {
      throw new UserError(`${where}: ${JSON.stringify(p)} is not a valid regular expression (${(e as Error).message})`);
    }
    if (!names.some((n) => re.test(n))) {
      throw new UserError(`${where}: attention layer pattern ${JSON.stringify(p)} matches no attention layer of the UNet (layers: ${names.slice(0, 4).join(', ')}${names.length > 4 ? `, ... ${names.length} in all` : ''})`);
    }
  }
}
