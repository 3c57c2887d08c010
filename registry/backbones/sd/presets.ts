import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClipTextConfig } from './clip.js';
import type { UNetConfig } from './unet.js';
import type { VaeConfig } from './vae.js';

/**
 * `tiny` preset: the Stable Diffusion 2.1 block structure at toy width (a few MB, random
 * init). The same configs build the parity fixtures (scripts/fixtures/backbones), so the
 * tiny models run exactly the code paths the real ones do.
 */
export const TINY_UNET: UNetConfig = {
  in_channels: 4,
  out_channels: 4,
  block_out_channels: [32, 64],
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  layers_per_block: 1,
  cross_attention_dim: 32,
  attention_head_dim: 2,
  norm_num_groups: 32,
  norm_eps: 1e-5,
  use_linear_projection: true,
  flip_sin_to_cos: true,
  freq_shift: 0,
  sample_size: 16,
};

export const TINY_VAE: VaeConfig = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  block_out_channels: [32, 64],
  layers_per_block: 1,
  latent_channels: 4,
  norm_num_groups: 32,
  scaling_factor: 0.18215,
  sample_size: 32,
};

/** Vocabulary: the 512 byte symbols of CLIP's BPE plus BOS/EOS (the tiny tokenizer has no merges). */
export const TINY_CLIP: ClipTextConfig = {
  vocab_size: 514,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  max_position_embeddings: 77,
  hidden_act: 'gelu',
  layer_norm_eps: 1e-5,
};

/** The diffusers repository the `sd21-base` preset expects a local copy of. */
export const SD21_BASE_REPO = 'stabilityai/stable-diffusion-2-1-base';

/** Where the `tiny-shapes` preset's weights live, relative to the package root. */
export const TINY_SHAPES_DIR = 'models/tiny-shapes';

/**
 * The `tiny-shapes` preset's folder: `models/tiny-shapes` under the package root (found by
 * walking up from this module, so it is the same from the sources and from dist/, and does
 * not depend on the working directory).
 */
export function tinyShapesRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (true) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, TINY_SHAPES_DIR, 'model_index.json'))) return join(dir, TINY_SHAPES_DIR);
    const up = dirname(dir);
    if (up === dir) throw new Error(`the tiny-shapes prior (${TINY_SHAPES_DIR}/model_index.json) was not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
