import { definePlugin, UserError, type PluginContext } from '../../../framework/api.js';
import { ClipTextModel, type ClipTextConfig } from './clip.js';
import { checkDiffusersFolder, loadClipText, loadTokenizer, loadUNet, loadVae } from './pretrained.js';
import { SD21_BASE_REPO, TINY_CLIP, TINY_SHAPES_DIR, TINY_UNET, TINY_VAE, tinyShapesRoot } from './presets.js';
import { byteLevelClipTokenizer } from './tokenizer.js';
import { UNet2DConditionModel, type UNetConfig } from './unet.js';
import { AutoencoderKL, type VaeConfig } from './vae.js';

const commonSchema = {
  preset: {
    enum: ['tiny', 'tiny-shapes', 'sd21-base'],
    default: 'tiny',
    description:
      '`tiny`: random init at toy width (tests, quickstart). `tiny-shapes`: the tiny prior pretrained on dataset/shapes that ships in ' +
      TINY_SHAPES_DIR + ' (64x64 images, 16x16x4 latents; configs/pretrain/tiny-shapes.yaml regenerates it), or the folder at `path`. `sd21-base`: weights from a local diffusers copy of ' + SD21_BASE_REPO + ' at `path`.',
  },
  path: { type: 'string', description: 'Root of a local diffusers pipeline folder (holding unet/, vae/, text_encoder/, tokenizer/); required by sd21-base, replaces the shipped folder for tiny-shapes.' },
  config: { type: 'object', description: 'tiny only: a diffusers config.json object replacing the tiny config (random init).' },
  trainable: {
    type: 'array',
    items: { type: 'string' },
    default: [],
    description: 'Regexes (full match) of parameter names a training step also updates, e.g. ["conv_in\\\\..*"]; everything else stays frozen.',
  },
} as const;

/** Memory options of the models that train at diffusion resolutions (UNet, VAE). */
const memorySchema = {
  checkpoint: {
    enum: ['none', 'blocks'],
    default: 'none',
    description: '`blocks`: each ResNet/transformer block keeps only its inputs and recomputes its forward in the backward pass (less memory, about one more forward of time). Gradients reach adapter weights and `trainable` parameters.',
  },
  attentionChunk: {
    type: 'integer',
    minimum: 0,
    default: 0,
    description: 'Queries per chunk of the memory-efficient attention (0: automatic, chunks of at most 2^22 scores). On the native backend with its fused kernels (`rass doctor`), unmasked attention tiles by itself and ignores it.',
  },
} as const;

function withMemory<T extends { store: { memory: { attentionChunk: number; checkpoint: 'none' | 'blocks' } } }>(m: T, opts: { checkpoint?: string; attentionChunk?: number }): T {
  m.store.memory.checkpoint = opts.checkpoint === 'blocks' ? 'blocks' : 'none';
  m.store.memory.attentionChunk = opts.attentionChunk ?? 0;
  return m;
}

function resolveRoot(opts: { preset: string; path?: string }, ctx: PluginContext, component: 'unet' | 'vae' | 'text_encoder'): string | null {
  if (opts.preset === 'tiny') return null;
  if (opts.preset === 'tiny-shapes' && !opts.path) {
    const root = tinyShapesRoot();
    checkDiffusersFolder(root, component === 'text_encoder' ? ['text_encoder', 'tokenizer'] : [component]);
    return root;
  }
  if (!opts.path) {
    throw new UserError(`${ctx.path}.path: preset sd21-base needs \`path\`, a local copy of ${SD21_BASE_REPO} (a diffusers folder with ${component}/)`);
  }
  const root = ctx.resolvePath(opts.path);
  checkDiffusersFolder(root, component === 'text_encoder' ? ['text_encoder', 'tokenizer'] : [component]);
  return root;
}

function finish<T extends { store: { markTrainable(p: readonly string[], w: string): void; count(): number }; dispose(): void }>(m: T, trainable: readonly string[], ctx: PluginContext, what: string): T {
  try {
    m.store.markTrainable(trainable, `${ctx.path}.trainable`);
  } catch (e) {
    m.dispose();
    throw e;
  }
  ctx.log.info(`${ctx.path}: ${what} with ${m.store.count().toLocaleString('en-US')} parameters`);
  return m;
}

export const unet2dCondition = definePlugin({
  kind: 'backbone',
  name: 'unet2d-condition',
  description: 'Stable-Diffusion UNet2DConditionModel (diffusers config/weights) with feature taps and cross-attention capture',
  docs: `Builds diffusers' UNet2DConditionModel (block types CrossAttnDownBlock2D, DownBlock2D,
UNetMidBlock2DCrossAttn, UNetMidBlock2D or none, UpBlock2D, CrossAttnUpBlock2D) from a config.json;
activations are NHWC. Every diffusers 0.42 config key is honoured or refused by name
(docs/diffusers-configs.md).
Weights load from \`<path>/unet/diffusion_pytorch_model*.safetensors\` by diffusers' key names
(fp16/bf16 upcast to fp32).

\`forward(sample, t, context, { taps: ['up_blocks.0', ...], captureAttention: { layers: ['.*attn2'], mode: 'mean' } })\`
returns the output plus the requested block outputs (conv_in, down_blocks.i, mid_block,
up_blocks.i, conv_out) and attention probabilities ([B, Nq, Nk] head-mean or
[B, heads, Nq, Nk]); the caller disposes them. Layer names are diffusers module names, e.g.
\`up_blocks.1.attentions.0.transformer_blocks.0.attn2\`.`,
  schema: { type: 'object', properties: { ...commonSchema, ...memorySchema }, additionalProperties: false } as const,
  create(opts, ctx) {
    const root = resolveRoot(opts, ctx, 'unet');
    const m = root ? loadUNet(root) : new UNet2DConditionModel((opts.config as UNetConfig | undefined) ?? TINY_UNET, ctx.seed, false, `${ctx.path}.config`);
    return withMemory(finish(m, opts.trainable, ctx, root ? `UNet from ${root}` : 'tiny UNet'), opts);
  },
});

export const autoencoderKl = definePlugin({
  kind: 'backbone',
  name: 'autoencoder-kl',
  description: 'Stable-Diffusion AutoencoderKL (VAE encoder/decoder, diffusers config/weights) with feature taps',
  schema: { type: 'object', properties: { ...commonSchema, ...memorySchema }, additionalProperties: false } as const,
  create(opts, ctx) {
    const root = resolveRoot(opts, ctx, 'vae');
    const m = root ? loadVae(root) : new AutoencoderKL((opts.config as VaeConfig | undefined) ?? TINY_VAE, ctx.seed, false, `${ctx.path}.config`);
    return withMemory(finish(m, opts.trainable, ctx, root ? `VAE from ${root}` : 'tiny VAE'), opts);
  },
});

export const clipText = definePlugin({
  kind: 'backbone',
  name: 'clip-text',
  description: 'CLIP text encoder (transformers CLIPTextModel weights) with its BPE tokenizer (vocab.json + merges.txt)',
  schema: { type: 'object', properties: commonSchema, additionalProperties: false } as const,
  create(opts, ctx) {
    const root = resolveRoot(opts, ctx, 'text_encoder');
    let m: ClipTextModel;
    if (root) {
      m = loadClipText(root);
      m.tokenizer = loadTokenizer(root);
    } else {
      m = new ClipTextModel((opts.config as ClipTextConfig | undefined) ?? TINY_CLIP, ctx.seed);
      if (m.config.vocab_size < 514) throw new UserError(`${ctx.path}.config.vocab_size: the tiny byte-level tokenizer needs at least 514 ids`);
      m.tokenizer = byteLevelClipTokenizer(m.config.max_position_embeddings);
    }
    return finish(m, opts.trainable, ctx, root ? `CLIP text encoder from ${root}` : 'tiny CLIP text encoder');
  },
});
