import * as tf from '@tensorflow/tfjs-core';
import type { ConditionalUNet } from '../../../framework/api.js';
import { Transformer2D } from './attention.js';
import { activation, Conv2d, GroupNorm, Linear, ParamStore, Scope } from './nn.js';
import { resolveUNetConfig, type ResolvedUNetConfig, type UNetDownSpec } from './diffusers-config.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.js';
import { diffusersConfig, saveComponent } from './save-pretrained.js';
import { NO_RECORD, Recorder, type ForwardOptions } from './taps.js';
import { Rng } from '../../../framework/api.js';

/**
 * diffusers' `UNet2DConditionModel` config.json. Every key diffusers 0.42 knows is either
 * honoured or refused by name (diffusers-config.ts, docs/diffusers-configs.md); a missing
 * key means diffusers' default (the interface lists what the presets set).
 */
export interface UNetConfig {
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  down_block_types: string[];
  up_block_types: string[];
  mid_block_type?: string | null;
  layers_per_block: number;
  cross_attention_dim: number;
  /** diffusers' historical naming: the number of HEADS per block. */
  attention_head_dim: number | number[];
  norm_num_groups: number;
  norm_eps: number;
  use_linear_projection: boolean;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  sample_size?: number | null;
  /** the keys above are the ones this project's presets set; any other diffusers key may be given */
  [k: string]: unknown;
}

/**
 * One block's forward in its own tidy. Under a gradient recording tfjs keeps every tensor the
 * forward makes until the whole forward returns; here a block's intermediates that no
 * gradient saved are freed as soon as the block returns, as PyTorch frees them. What the
 * backward needs survives: tfjs keeps the tensors a kernel saves, and the recorder keeps
 * tapped features and captured attention.
 */
function block<T extends tf.Tensor>(f: () => T): T {
  return tf.tidy(f);
}

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
  readonly mid: { resnets: ResnetBlock2D[]; attention: Transformer2D | null } | null;
  readonly up: UpBlock[] = [];
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;
  /** diffusers' `encoder_hid_proj` (text_proj): applied to the context before any block. */
  readonly encoderHidProj: Linear | null;
  /** The config with every per-block value expanded (what the forward uses). */
  readonly resolved: ResolvedUNetConfig;
  private readonly act: (x: tf.Tensor) => tf.Tensor;

  /** `where`: the file or option the config came from, named in a refusal. */
  constructor(readonly config: UNetConfig, seed = 0, shapesOnly = false, where = 'unet config') {
    const r = resolveUNetConfig(config, where);
    this.resolved = r;
    this.act = activation(r.act);
    this.store = new ParamStore(Rng.derive(seed, 'unet2d-condition'), shapesOnly);
    const root = new Scope(this.store, '');
    const chans = r.channels;
    const n = chans.length;
    const tembDim = r.timeDim;
    const groups = r.groups;
    const eps = r.eps;
    const res = (scope: Scope, inChannels: number, outChannels: number, outputScale = 1) =>
      new ResnetBlock2D(scope, { inChannels, outChannels, tembChannels: tembDim, groups, eps, act: this.act, outputScale, scaleShift: r.scaleShift });
    // diffusers: head width = channels // heads (the inner width may be narrower than the block)
    const transformer = (scope: Scope, ch: number, spec: { heads: number; crossDim: number; onlyCross?: boolean }, depth: number) =>
      new Transformer2D(scope, {
        channels: ch,
        heads: spec.heads,
        dimHead: Math.floor(ch / spec.heads),
        crossDim: spec.crossDim,
        layers: depth,
        groups,
        linearProjection: r.linearProjection,
        onlyCrossAttention: spec.onlyCross ?? false,
      });

    const pad = (k: number) => (k - 1) >> 1;
    this.convIn = new Conv2d(root.child('conv_in'), r.inChannels, chans[0], r.convInKernel, 1, pad(r.convInKernel));
    this.timeLinear1 = new Linear(root.child('time_embedding').child('linear_1'), chans[0], tembDim);
    this.timeLinear2 = new Linear(root.child('time_embedding').child('linear_2'), tembDim, tembDim);
    this.encoderHidProj = r.encoderHidProj ? new Linear(root.child('encoder_hid_proj'), r.encoderHidProj[0], r.encoderHidProj[1]) : null;

    let out = chans[0];
    r.down.forEach((spec: UNetDownSpec, i) => {
      const cin = out;
      out = chans[i];
      const s = root.child('down_blocks').child(i);
      const blk: DownBlock = { name: `down_blocks.${i}`, resnets: [], attentions: [], down: null };
      for (let j = 0; j < spec.layers; j++) {
        blk.resnets.push(res(s.child('resnets').child(j), j === 0 ? cin : out, out));
        if (spec.type === 'cross') blk.attentions.push(transformer(s.child('attentions').child(j), out, spec, spec.depths[j]));
      }
      if (i < n - 1) blk.down = new Downsample2D(s.child('downsamplers').child(0), out, r.downsamplePadding === 0);
      this.down.push(blk);
    });

    const midCh = chans[n - 1];
    const ms = root.child('mid_block');
    if (r.mid?.type === 'cross') {
      this.mid = {
        resnets: [0, 1].map((j) => res(ms.child('resnets').child(j), midCh, midCh, r.midScale)),
        attention: transformer(ms.child('attentions').child(0), midCh, r.mid, r.mid.depth),
      };
    } else if (r.mid?.type === 'plain') {
      // diffusers builds UNetMidBlock2D here with num_layers=0 and no attention: one ResNet
      this.mid = { resnets: [res(ms.child('resnets').child(0), midCh, midCh, r.midScale)], attention: null };
    } else {
      this.mid = null;
    }

    const rev = [...chans].reverse();
    let outCh = rev[0];
    r.up.forEach((spec, i) => {
      const prev = outCh;
      outCh = rev[i];
      const inCh = rev[Math.min(i + 1, n - 1)];
      const s = root.child('up_blocks').child(i);
      const blk: UpBlock = { name: `up_blocks.${i}`, resnets: [], attentions: [], up: null };
      for (let j = 0; j < spec.layers; j++) {
        const skip = j === spec.layers - 1 ? inCh : outCh;
        const rin = j === 0 ? prev : outCh;
        blk.resnets.push(res(s.child('resnets').child(j), rin + skip, outCh));
        if (spec.type === 'cross') blk.attentions.push(transformer(s.child('attentions').child(j), outCh, spec, spec.depths[j]));
      }
      if (i < n - 1) blk.up = new Upsample2D(s.child('upsamplers').child(0), outCh);
      this.up.push(blk);
    });

    this.normOut = new GroupNorm(root.child('conv_norm_out'), groups, chans[0], eps);
    this.convOut = new Conv2d(root.child('conv_out'), chans[0], r.outChannels, r.convOutKernel, 1, pad(r.convOutKernel));
  }

  /** Time embedding for timesteps `t` ([B]). */
  embedTime(t: tf.Tensor1D): tf.Tensor2D {
    const r = this.resolved;
    const e = timestepEmbedding(t, r.channels[0], r.flipSinToCos, r.freqShift);
    // TimestepEmbedding: linear_1, act_fn, linear_2, timestep_post_act; then the UNet's time_embedding_act_fn
    let h = this.timeLinear2.forward(this.act(this.timeLinear1.forward(e)));
    if (r.timePostAct) h = activation(r.timePostAct)(h);
    if (r.timeAct) h = activation(r.timeAct)(h);
    return h as tf.Tensor2D;
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
    const ctx = this.encoderHidProj ? this.encoderHidProj.forward(context) : context;
    let h = this.convIn.forward(this.resolved.centerInput ? (tf.sub(tf.mul(sample, 2), 1) as tf.Tensor4D) : sample);
    rec.tap('conv_in', h);
    const skips: tf.Tensor4D[] = [h];
    for (const blk of this.down) {
      blk.resnets.forEach((r, j) => {
        h = block(() => r.forward(h, temb));
        const attn = blk.attentions[j];
        if (attn) h = block(() => attn.forward(h, ctx, rec));
        skips.push(h);
      });
      if (blk.down) {
        const down = blk.down;
        h = block(() => down.forward(h));
        skips.push(h);
      }
      rec.tap(blk.name, h);
    }
    if (this.mid) {
      const mid = this.mid;
      h = block(() => mid.resnets[0].forward(h, temb));
      const midAttn = mid.attention;
      if (midAttn) h = block(() => midAttn.forward(h, ctx, rec));
      for (const res of mid.resnets.slice(1)) h = block(() => res.forward(h, temb));
      rec.tap('mid_block', h);
    }
    for (const blk of this.up) {
      blk.resnets.forEach((r, j) => {
        const skip = skips.pop() as tf.Tensor4D;
        h = block(() => r.forward(tf.concat([h, skip], 3), temb));
        const attn = blk.attentions[j];
        if (attn) h = block(() => attn.forward(h, ctx, rec));
      });
      if (blk.up) {
        // as diffusers: sizes that are not a multiple of the total stride upsample to the skip's size
        const next = skips[skips.length - 1];
        h = blk.up.forward(h, next ? [next.shape[1], next.shape[2]] : undefined);
      }
      rec.tap(blk.name, h);
    }
    h = this.convOut.forward(this.act(this.normOut.forward(h)) as tf.Tensor4D);
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

export function disposeOutput(o: { features: Map<string, tf.Tensor>; attention: Map<string, tf.Tensor> }): void {
  for (const t of o.features.values()) t.dispose();
  for (const t of o.attention.values()) t.dispose();
}
