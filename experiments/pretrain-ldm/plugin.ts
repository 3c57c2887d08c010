import { componentSchema, definePlugin, UserError, type ConditionalUNet, type Experiment, type LatentAutoencoder, type PromptEncoder, type SegDataset, type Tagger } from '../../framework/api.js';
import { compileOptionSchema } from '../common/train-step.js';
import { SHAPES_TEXTURE_PROMPTS } from './prompts.js';
import { pretrain, type PretrainOptions } from './train.js';

const phase = (steps: number, batch: number, lr: number, extra: Record<string, unknown>) =>
  ({
    type: 'object',
    additionalProperties: false,
    default: {},
    properties: {
      steps: { type: 'integer', minimum: 1, default: steps },
      batch_size: { type: 'integer', minimum: 1, default: batch },
      lr: { type: 'number', exclusiveMinimum: 0, default: lr, description: 'AdamW peak learning rate' },
      min_lr_ratio: { type: 'number', minimum: 0, maximum: 1, default: 0.1, description: 'cosine decay floor, as a fraction of lr' },
      warmup: { type: 'integer', minimum: 0, default: 50, description: 'linear warmup steps (from 1% of lr)' },
      weight_decay: { type: 'number', minimum: 0, default: 0.01 },
      max_grad_norm: { type: 'number', exclusiveMinimum: 0, default: 1, description: 'global-norm gradient clipping' },
      ...extra,
    },
  }) as const;

/**
 * `experiment/pretrain-ldm`: a small pretrained latent-diffusion prior (VAE, then an
 * epsilon-prediction UNet conditioned on tag prompts) for the embedded default, so that
 * restoration methods that adapt a *pretrained* prior (SCR/OSEDiff) have one to adapt.
 */
export const pretrainLdm = definePlugin({
  kind: 'experiment',
  name: 'pretrain-ldm',
  description: 'pretrain a tiny latent-diffusion prior (VAE, then a tag-conditioned epsilon UNet) and export it as a diffusers folder',
  docs: `Phase 1 trains the VAE on clean dataset images (or random \`crop\`-sized windows of them: cheaper, and the fully convolutional VAE runs at any size): L1 (l1_weight) + MSE (mse_weight) of the decoded
posterior sample + kl_weight x KL (KL summed over latent elements per image, divided by the image's
element count: LDM's sum-reduced weighting, where 1e-6 is its default). The latent scaling factor is
then measured as 1 / std of the training latents (as SD's 0.18215 was). Phase 2 freezes the VAE and
the text encoder and trains the UNet to predict epsilon (SD's scaled_linear betas, 1000 steps) from
noised latents, conditioned on each image's tags from \`tagger\` joined by ", " (replaced by "" with
probability prompt_dropout). Both phases: AdamW, warmup + cosine, global-norm clipping, seeded data
order, checkpoints every checkpoint_every steps and on SIGINT/SIGTERM (\`rass run --resume\`).
The last \`holdout\` dataset samples are never trained on: they give the held-out VAE PSNR and the
epsilon MSE with and without the prompt (eval/eps_mse_cond vs eval/eps_mse_uncond).
Artifacts: \`model/\` is a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/,
tokenizer/, scheduler/) with ddim_samples.png (one row per sample prompt, deterministic DDIM, eta 0),
vae_reconstructions.png and provenance.json; point a backbone's \`path\` at it to use it.`,
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      dataset: { ...componentSchema('dataset', 'training images (one size); the last `holdout` samples are held out'), default: { type: 'dataset/shapes', length: 2048, height: 64, width: 64 } },
      tagger: { ...componentSchema('tagger', 'tags of each image: the prompt is the tags joined by ", "'), default: { type: 'tagger/label-map' } },
      text_encoder: { ...componentSchema('backbone', 'text encoder (PromptEncoder), frozen'), default: { type: 'backbone/clip-text', preset: 'tiny' } },
      vae: { ...componentSchema('backbone', 'VAE (LatentAutoencoder), trained in phase 1'), default: { type: 'backbone/autoencoder-kl', preset: 'tiny' } },
      unet: { ...componentSchema('backbone', 'UNet (ConditionalUNet), trained in phase 2'), default: { type: 'backbone/unet2d-condition', preset: 'tiny' } },
      holdout: { type: 'integer', minimum: 1, default: 64, description: 'the last N dataset samples: evaluation only' },
      vae_phase: phase(400, 8, 1e-3, {
        l1_weight: { type: 'number', minimum: 0, default: 1 },
        mse_weight: { type: 'number', minimum: 0, default: 0 },
        kl_weight: { type: 'number', minimum: 0, default: 1e-6 },
        eval_every: { type: 'integer', minimum: 0, default: 0, description: 'log the held-out reconstruction PSNR (vae/psnr_heldout) every N steps (0: only at the end of the phase)' },
        crop: { type: 'integer', minimum: 0, default: 0, description: 'train on random crops of this size (0: whole images); the VAE is fully convolutional, so it then runs at any size' },
        init: {
          enum: ['default', 'zero-residual'],
          default: 'default',
          description: "default: the backbone's own init (PyTorch's). zero-residual: every residual branch's last layer (ResnetBlock2D conv2, attention to_out.0) starts at zero, so each block starts as its shortcut; the architecture (and the diffusers layout) is unchanged",
        },
      }),
      unet_phase: phase(1500, 16, 5e-4, {
        prompt_dropout: { type: 'number', minimum: 0, maximum: 1, default: 0.1, description: 'probability of training a sample with the empty prompt' },
      }),
      checkpoint_every: { type: 'integer', minimum: 1, default: 200 },
      sample: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          prompts: { type: 'array', items: { type: 'string' }, minItems: 1, default: [...SHAPES_TEXTURE_PROMPTS], description: 'one grid row per prompt' },
          per_prompt: { type: 'integer', minimum: 1, default: 6 },
          steps: { type: 'integer', minimum: 1, maximum: 1000, default: 10, description: 'DDIM steps' },
          guidance_scale: { type: 'number', minimum: 0, default: 1, description: 'classifier-free guidance (1: none)' },
        },
      },
      compile: compileOptionSchema(),
      eval_timesteps: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 999 }, minItems: 1, default: [50, 200, 400, 600, 800] },
    },
  } as const,
  async create(o, ctx): Promise<Experiment> {
    const dataset = await ctx.build<SegDataset>(o.dataset, { expectKind: 'dataset', path: `${ctx.path}.dataset` });
    const tagger = await ctx.build<Tagger>(o.tagger, { expectKind: 'tagger', path: `${ctx.path}.tagger` });
    const textEncoder = await ctx.build<PromptEncoder>(o.text_encoder, { expectKind: 'backbone', path: `${ctx.path}.text_encoder` });
    const vae = await ctx.build<LatentAutoencoder>(o.vae, { expectKind: 'backbone', path: `${ctx.path}.vae` });
    const unet = await ctx.build<ConditionalUNet>(o.unet, { expectKind: 'backbone', path: `${ctx.path}.unet` });
    const need = (ok: boolean, where: string, what: string) => {
      if (!ok) throw new UserError(`${ctx.path}.${where}: expected ${what}`);
    };
    need(typeof textEncoder.encodeText === 'function', 'text_encoder', 'a text encoder backbone (encodeText), e.g. backbone/clip-text');
    need(typeof vae.runEncode === 'function' && typeof vae.runDecode === 'function', 'vae', 'a VAE backbone (runEncode/runDecode), e.g. backbone/autoencoder-kl');
    need(typeof unet.run === 'function', 'unet', 'a conditional UNet backbone (run), e.g. backbone/unet2d-condition');
    if (o.holdout >= dataset.length) throw new UserError(`${ctx.path}.holdout: ${o.holdout} is not below the dataset's ${dataset.length} samples`);
    const opts = o as unknown as PretrainOptions;
    return {
      run: async (rc) => {
        try {
          return await pretrain(opts, { dataset, tagger, textEncoder, vae, unet }, rc);
        } finally {
          for (const b of [textEncoder, vae, unet]) b.dispose();
        }
      },
    };
  },
});
