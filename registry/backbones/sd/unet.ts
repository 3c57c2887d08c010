import * as tf from '@tensorflow/tfjs-core';
import type { ConditionalUNet } from '../../../framework/api.js';
import { Transformer2D } from './attention.js';
import { Conv2d, GroupNorm, Linear, ParamStore, Scope, silu } from './nn.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.js';
import { diffusersConfig, saveComponent } from './save-pretrained.js';
import { NO_RECORD, Recorder, type ForwardOptions } from './taps.js';
import { Rng } from '../../../framework/api.js';

/** The subset of diffusers' `UNet2DConditionModel` config.json that SD 1.x/2.x use. */
export interface UNetConfig {
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  down_block_types: string[];
  up_block_types: string[];
  mid_block_type?: string | null;
  layers_per_block: number;
  cross_attention_dim: number;
  /** diffusers' historical naming: without `num_attention_heads` this is the number of HEADS per block. */
  attention_head_dim: number | number[];
  num_attention_heads?: number | number[] | null;
  norm_num_groups: number;
  norm_eps: number;
  use_linear_projection: boolean;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  transformer_layers_per_block?: number;
  act_fn?: string;
  sample_size?: number;
  upcast_attention?: boolean;
  only_cross_attention?: boolean;
  dual_cross_attention?: boolean;
  class_embed_type?: string | null;
  addition_embed_type?: string | null;
  time_embedding_type?: string;
  resnet_time_scale_shift?: string;
  [k: string]: unknown;
}

const perBlock = (v: number | number[], n: number): number[] => (Array.isArray(v) ? v : new Array(n).fill(v));

/** Sinusoidal timestep embedding exactly as diffusers' `get_timestep_embedding` (scale 1, max period 1e4). */
export function timestepEmbedding(t: tf.Tensor1D, dim: number, flipSinToCos: boolean, shift: number): tf.Tensor2D {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = new Float32Array(half);
    for (let i = 0; i < half; i++) freqs[i] = Math.exp((-Math.log(10000) * i) / (half - shift));
    const args = tf.mul(tf.reshape(tf.cast(t, 'float32'), [-1, 1]), tf.tensor2d(freqs, [1, half]));
    const sin = tf.sin(args);
    const cos = tf.cos(args);
    let emb = flipSinToCos ? tf.concat([cos, sin], 1) : tf.concat([sin, cos], 1);
    if (dim % 2 === 1) emb = tf.pad(emb, [[0, 0], [0, 1]]);
    return emb as tf.Tensor2D;
  });
}

interface DownBlock {
  name: string;
  resnets: ResnetBlock2D[];
  attentions: Transformer2D[];
  down: Downsample2D | null;
}
interface UpBlock {
  name: string;
  resnets: ResnetBlock2D[];
  attentions: Transformer2D[];
  up: Upsample2D | null;
}

export interface UNetOutput {
  sample: tf.Tensor4D;
  features: Map<string, tf.Tensor>;
  attention: Map<string, tf.Tensor>;
}

/**
 * `UNet2DConditionModel` for the SD block types (CrossAttnDownBlock2D, DownBlock2D,
 * UNetMidBlock2DCrossAttn, UpBlock2D, CrossAttnUpBlock2D). Activations are NHWC.
 * Tap names: `conv_in`, `down_blocks.i`, `mid_block`, `up_blocks.i`, `conv_out`.
 */
export class UNet2DConditionModel implements ConditionalUNet {
  readonly type = 'unet2d-condition';
  readonly store: ParamStore;
  readonly timeLinear1: Linear;
  readonly timeLinear2: Linear;
  readonly convIn: Conv2d;
  readonly down: DownBlock[] = [];
  readonly mid: { resnets: ResnetBlock2D[]; attention: Transformer2D } | null;
  readonly up: UpBlock[] = [];
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(readonly config: UNetConfig, seed = 0, shapesOnly = false) {
    checkUnsupported(config);
    this.store = new ParamStore(Rng.derive(seed, 'unet2d-condition'), shapesOnly);
    const root = new Scope(this.store, '');
    const c = config;
    const chans = c.block_out_channels;
    const n = chans.length;
    const heads = perBlock(c.num_attention_heads ?? c.attention_head_dim, n);
    const tembDim = chans[0] * 4;
    const groups = c.norm_num_groups;
    const eps = c.norm_eps;
    const tLayers = c.transformer_layers_per_block ?? 1;
    const transformer = (scope: Scope, ch: number, h: number) =>
      new Transformer2D(scope, { channels: ch, heads: h, dimHead: ch / h, crossDim: c.cross_attention_dim, layers: tLayers, groups, linearProjection: c.use_linear_projection });

    this.convIn = new Conv2d(root.child('conv_in'), c.in_channels, chans[0], 3, 1, 1);
    this.timeLinear1 = new Linear(root.child('time_embedding').child('linear_1'), chans[0], tembDim);
    this.timeLinear2 = new Linear(root.child('time_embedding').child('linear_2'), tembDim, tembDim);

    let out = chans[0];
    c.down_block_types.forEach((type, i) => {
      const cin = out;
      out = chans[i];
      const s = root.child('down_blocks').child(i);
      const cross = type === 'CrossAttnDownBlock2D';
      if (!cross && type !== 'DownBlock2D') throw new Error(`unsupported down block type ${type}`);
      const blk: DownBlock = { name: `down_blocks.${i}`, resnets: [], attentions: [], down: null };
      for (let j = 0; j < c.layers_per_block; j++) {
        blk.resnets.push(new ResnetBlock2D(s.child('resnets').child(j), { inChannels: j === 0 ? cin : out, outChannels: out, tembChannels: tembDim, groups, eps }));
        if (cross) blk.attentions.push(transformer(s.child('attentions').child(j), out, heads[i]));
      }
      if (i < n - 1) blk.down = new Downsample2D(s.child('downsamplers').child(0), out);
      this.down.push(blk);
    });

    const midType = c.mid_block_type === undefined ? 'UNetMidBlock2DCrossAttn' : c.mid_block_type;
    if (midType === 'UNetMidBlock2DCrossAttn') {
      const s = root.child('mid_block');
      const ch = chans[n - 1];
      this.mid = {
        resnets: [0, 1].map((j) => new ResnetBlock2D(s.child('resnets').child(j), { inChannels: ch, outChannels: ch, tembChannels: tembDim, groups, eps })),
        attention: transformer(s.child('attentions').child(0), ch, heads[n - 1]),
      };
    } else if (midType === null) {
      this.mid = null;
    } else {
      throw new Error(`unsupported mid block type ${midType}`);
    }

    const rev = [...chans].reverse();
    const revHeads = [...heads].reverse();
    let outCh = rev[0];
    c.up_block_types.forEach((type, i) => {
      const prev = outCh;
      outCh = rev[i];
      const inCh = rev[Math.min(i + 1, n - 1)];
      const s = root.child('up_blocks').child(i);
      const cross = type === 'CrossAttnUpBlock2D';
      if (!cross && type !== 'UpBlock2D') throw new Error(`unsupported up block type ${type}`);
      const blk: UpBlock = { name: `up_blocks.${i}`, resnets: [], attentions: [], up: null };
      const layers = c.layers_per_block + 1;
      for (let j = 0; j < layers; j++) {
        const skip = j === layers - 1 ? inCh : outCh;
        const rin = j === 0 ? prev : outCh;
        blk.resnets.push(new ResnetBlock2D(s.child('resnets').child(j), { inChannels: rin + skip, outChannels: outCh, tembChannels: tembDim, groups, eps }));
        if (cross) blk.attentions.push(transformer(s.child('attentions').child(j), outCh, revHeads[i]));
      }
      if (i < n - 1) blk.up = new Upsample2D(s.child('upsamplers').child(0), outCh);
      this.up.push(blk);
    });

    this.normOut = new GroupNorm(root.child('conv_norm_out'), groups, chans[0], eps);
    this.convOut = new Conv2d(root.child('conv_out'), chans[0], c.out_channels, 3, 1, 1);
  }

  /** Time embedding for timesteps `t` ([B]). */
  embedTime(t: tf.Tensor1D): tf.Tensor2D {
    const e = timestepEmbedding(t, this.config.block_out_channels[0], this.config.flip_sin_to_cos, this.config.freq_shift);
    return this.timeLinear2.forward(silu(this.timeLinear1.forward(e))) as tf.Tensor2D;
  }

  /**
   * Predict from `sample` (NHWC latents), timesteps ([B] or a number) and `context`
   * ([B, tokens, cross_attention_dim]). Tapped features and captured attention are kept
   * tensors the caller disposes (use `disposeOutput`).
   */
  forward(sample: tf.Tensor4D, timesteps: tf.Tensor1D | number, context: tf.Tensor3D, opts: ForwardOptions = {}): UNetOutput {
    const rec = opts.taps?.length || opts.captureAttention ? new Recorder(opts) : NO_RECORD;
    const result = tf.tidy(() => this.run(sample, timesteps, context, rec));
    if (rec !== NO_RECORD) {
      const missing = rec.missing();
      if (missing.length) {
        rec.dispose();
        result.dispose();
        throw new Error(`unknown tap name(s) ${missing.join(', ')}; available: ${this.tapNames().join(', ')}`);
      }
    }
    return { sample: result, features: rec === NO_RECORD ? new Map() : rec.features, attention: rec === NO_RECORD ? new Map() : rec.attention };
  }

  /** The forward as plain ops (no tidy): use it inside a gradient function. */
  run(sample: tf.Tensor4D, timesteps: tf.Tensor1D | number, context: tf.Tensor3D, rec: Recorder = NO_RECORD): tf.Tensor4D {
    const b = sample.shape[0];
    const t = typeof timesteps === 'number' ? tf.fill([b], timesteps) as tf.Tensor1D : timesteps.shape[0] === b ? timesteps : (tf.broadcastTo(timesteps, [b]) as tf.Tensor1D);
    const temb = this.embedTime(t);
    let h = this.convIn.forward(sample);
    rec.tap('conv_in', h);
    const skips: tf.Tensor4D[] = [h];
    for (const blk of this.down) {
      blk.resnets.forEach((r, j) => {
        h = r.forward(h, temb);
        if (blk.attentions[j]) h = blk.attentions[j].forward(h, context, rec);
        skips.push(h);
      });
      if (blk.down) {
        h = blk.down.forward(h);
        skips.push(h);
      }
      rec.tap(blk.name, h);
    }
    if (this.mid) {
      h = this.mid.resnets[0].forward(h, temb);
      h = this.mid.attention.forward(h, context, rec);
      h = this.mid.resnets[1].forward(h, temb);
      rec.tap('mid_block', h);
    }
    for (const blk of this.up) {
      blk.resnets.forEach((r, j) => {
        const skip = skips.pop() as tf.Tensor4D;
        h = r.forward(tf.concat([h, skip], 3), temb);
        if (blk.attentions[j]) h = blk.attentions[j].forward(h, context, rec);
      });
      if (blk.up) {
        // as diffusers: sizes that are not a multiple of the total stride upsample to the skip's size
        const next = skips[skips.length - 1];
        h = blk.up.forward(h, next ? [next.shape[1], next.shape[2]] : undefined);
      }
      rec.tap(blk.name, h);
    }
    h = this.convOut.forward(silu(this.normOut.forward(h)) as tf.Tensor4D);
    rec.tap('conv_out', h);
    return h;
  }

  runWithTaps(sample: tf.Tensor4D, timesteps: tf.Tensor1D | number, context: tf.Tensor3D, opts: ForwardOptions): UNetOutput {
    const rec = new Recorder(opts);
    const out = this.run(sample, timesteps, context, rec);
    const missing = rec.missing();
    if (missing.length) {
      rec.dispose();
      throw new Error(`unknown tap name(s) ${missing.join(', ')}; available: ${this.tapNames().join(', ')}`);
    }
    return { sample: out, features: rec.features, attention: rec.attention };
  }

  tapNames(): string[] {
    return ['conv_in', ...this.down.map((d) => d.name), ...(this.mid ? ['mid_block'] : []), ...this.up.map((u) => u.name), 'conv_out'];
  }

  savePretrained(root: string, opts: { config?: Readonly<Record<string, unknown>> } = {}): Record<string, [string, string]> {
    saveComponent(root, 'unet', 'diffusion_pytorch_model.safetensors', this.store, diffusersConfig('UNet2DConditionModel', this.config, opts.config));
    return { unet: ['diffusers', 'UNet2DConditionModel'] };
  }

  dispose(): void {
    this.store.dispose();
  }
}

function checkUnsupported(c: UNetConfig): void {
  const bad: string[] = [];
  if (c.class_embed_type) bad.push(`class_embed_type=${c.class_embed_type}`);
  if (c.addition_embed_type) bad.push(`addition_embed_type=${c.addition_embed_type}`);
  if (c.dual_cross_attention) bad.push('dual_cross_attention');
  if (c.only_cross_attention === true) bad.push('only_cross_attention');
  if (c.time_embedding_type && c.time_embedding_type !== 'positional') bad.push(`time_embedding_type=${c.time_embedding_type}`);
  if (c.resnet_time_scale_shift && c.resnet_time_scale_shift !== 'default') bad.push(`resnet_time_scale_shift=${c.resnet_time_scale_shift}`);
  if (c.act_fn && c.act_fn !== 'silu') bad.push(`act_fn=${c.act_fn}`);
  if (c.center_input_sample) bad.push('center_input_sample');
  for (const k of ['conv_in_kernel', 'conv_out_kernel'] as const) if (c[k] !== undefined && c[k] !== 3) bad.push(`${k}=${String(c[k])}`);
  for (const k of ['time_cond_proj_dim', 'encoder_hid_dim', 'time_embedding_dim', 'time_embedding_act_fn', 'timestep_post_act', 'num_class_embeds', 'cross_attention_norm'] as const) {
    if (c[k] !== undefined && c[k] !== null) bad.push(`${k}=${JSON.stringify(c[k])}`);
  }
  if (c.resnet_out_scale_factor !== undefined && c.resnet_out_scale_factor !== 1) bad.push(`resnet_out_scale_factor=${String(c.resnet_out_scale_factor)}`);
  if (c.mid_block_scale_factor !== undefined && c.mid_block_scale_factor !== 1) bad.push(`mid_block_scale_factor=${String(c.mid_block_scale_factor)}`);
  if (c.resnet_skip_time_act) bad.push('resnet_skip_time_act');
  if (c.attention_type !== undefined && c.attention_type !== 'default') bad.push(`attention_type=${String(c.attention_type)}`);
  if (Array.isArray(c.transformer_layers_per_block)) bad.push('per-block transformer_layers_per_block');
  if (bad.length) throw new Error(`unet config uses features this implementation does not support: ${bad.join(', ')}`);
}

export function disposeOutput(o: { features: Map<string, tf.Tensor>; attention: Map<string, tf.Tensor> }): void {
  for (const t of o.features.values()) t.dispose();
  for (const t of o.attention.values()) t.dispose();
}
