import * as tf from '@tensorflow/tfjs-core';
import type { LatentAutoencoder } from '../../../framework/api.js';
import { Attention } from './attention.js';
import { activation, Conv2d, GroupNorm, ParamStore, Scope, silu } from './nn.js';
import { resolveVaeConfig, type ResolvedVaeConfig } from './diffusers-config.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.js';
import { diffusersConfig, saveComponent } from './save-pretrained.js';
import { NO_RECORD, Recorder, type ForwardOptions } from './taps.js';
import { Rng } from '../../../framework/api.js';

/**
 * diffusers' `AutoencoderKL` config.json. Every key diffusers 0.42 knows is either honoured or
 * refused by name (diffusers-config.ts, docs/diffusers-configs.md); a missing key means
 * diffusers' default.
 */
export interface VaeConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: string[];
  up_block_types: string[];
  block_out_channels: number[];
  layers_per_block: number;
  latent_channels: number;
  norm_num_groups: number;
  act_fn?: string;
  scaling_factor?: number;
  shift_factor?: number | null;
  use_quant_conv?: boolean;
  use_post_quant_conv?: boolean;
  mid_block_add_attention?: boolean;
  sample_size?: number;
  [k: string]: unknown;
}

const EPS = 1e-6;

class MidBlock {
  readonly resnets: ResnetBlock2D[];
  readonly attention: Attention | null;
  constructor(scope: Scope, ch: number, groups: number, withAttention: boolean, act: (x: tf.Tensor) => tf.Tensor) {
    this.resnets = [0, 1].map((j) => new ResnetBlock2D(scope.child('resnets').child(j), { inChannels: ch, outChannels: ch, tembChannels: null, groups, eps: EPS, act }));
    // diffusers: one head of width = channels, group norm + residual, biased projections
    this.attention = withAttention
      ? new Attention(scope.child('attentions').child(0), { queryDim: ch, heads: 1, dimHead: ch, bias: true, normGroups: groups, eps: EPS, residual: true })
      : null;
  }
  forward(x: tf.Tensor4D, rec: Recorder): tf.Tensor4D {
    let h = this.resnets[0].forward(x, null);
    if (this.attention) h = this.attention.forward(h, null, rec) as tf.Tensor4D;
    return this.resnets[1].forward(h, null);
  }
}

export interface VaeEncodeOutput {
  /** Posterior mean (NHWC, unscaled). */
  mean: tf.Tensor4D;
  logvar: tf.Tensor4D;
  features: Map<string, tf.Tensor>;
}

/**
 * `AutoencoderKL` (Encoder/Decoder with DownEncoderBlock2D/UpDecoderBlock2D, mid-block
 * attention, quant convs). NHWC. Tap names: `encoder.down_blocks.i`, `encoder.mid_block`,
 * `decoder.mid_block`, `decoder.up_blocks.i`.
 */
export class AutoencoderKL implements LatentAutoencoder {
  readonly type = 'autoencoder-kl';
  readonly store: ParamStore;
  private readonly enc: { convIn: Conv2d; down: { name: string; resnets: ResnetBlock2D[]; down: Downsample2D | null }[]; mid: MidBlock; normOut: GroupNorm; convOut: Conv2d };
  private readonly dec: { convIn: Conv2d; mid: MidBlock; up: { name: string; resnets: ResnetBlock2D[]; up: Upsample2D | null }[]; normOut: GroupNorm; convOut: Conv2d };
  private readonly quantConv: Conv2d | null;
  private readonly postQuantConv: Conv2d | null;

  /** The checked config (what the model is built from). */
  readonly resolved: ResolvedVaeConfig;

  /** `where`: the file or option the config came from, named in a refusal. */
  constructor(readonly config: VaeConfig, seed = 0, shapesOnly = false, where = 'vae config') {
    const r = resolveVaeConfig(config, where);
    this.resolved = r;
    this.store = new ParamStore(Rng.derive(seed, 'autoencoder-kl'), shapesOnly);
    const root = new Scope(this.store, '');
    const chans = r.channels;
    const n = chans.length;
    const g = r.groups;
    const attn = r.midAttention;
    const lat = r.latentChannels;
    // act_fn reaches the ResNets only: diffusers' Encoder/Decoder output activation is a fixed SiLU
    const act = activation(r.act);
    const layers = r.layers;

    const e = root.child('encoder');
    let out = chans[0];
    const down = chans.map((_, i) => {
      const cin = out;
      out = chans[i];
      const s = e.child('down_blocks').child(i);
      const resnets = Array.from({ length: layers }, (__, j) =>
        new ResnetBlock2D(s.child('resnets').child(j), { inChannels: j === 0 ? cin : out, outChannels: out, tembChannels: null, groups: g, eps: EPS, act }));
      return { name: `encoder.down_blocks.${i}`, resnets, down: i < n - 1 ? new Downsample2D(s.child('downsamplers').child(0), out, true) : null };
    });
    this.enc = {
      convIn: new Conv2d(e.child('conv_in'), r.inChannels, chans[0], 3, 1, 1),
      down,
      mid: new MidBlock(e.child('mid_block'), chans[n - 1], g, attn, act),
      normOut: new GroupNorm(e.child('conv_norm_out'), g, chans[n - 1], EPS),
      convOut: new Conv2d(e.child('conv_out'), chans[n - 1], 2 * lat, 3, 1, 1),
    };
    // order of construction does not matter for names; keep it close to diffusers for readability
    this.quantConv = r.quantConv ? new Conv2d(root.child('quant_conv'), 2 * lat, 2 * lat, 1) : null;
    this.postQuantConv = r.postQuantConv ? new Conv2d(root.child('post_quant_conv'), lat, lat, 1) : null;

    const d = root.child('decoder');
    const rev = [...chans].reverse();
    let outCh = rev[0];
    const up = chans.map((_, i) => {
      const prev = outCh;
      outCh = rev[i];
      const s = d.child('up_blocks').child(i);
      const resnets = Array.from({ length: layers + 1 }, (__, j) =>
        new ResnetBlock2D(s.child('resnets').child(j), { inChannels: j === 0 ? prev : outCh, outChannels: outCh, tembChannels: null, groups: g, eps: EPS, act }));
      return { name: `decoder.up_blocks.${i}`, resnets, up: i < n - 1 ? new Upsample2D(s.child('upsamplers').child(0), outCh) : null };
    });
    this.dec = {
      convIn: new Conv2d(d.child('conv_in'), lat, rev[0], 3, 1, 1),
      mid: new MidBlock(d.child('mid_block'), rev[0], g, attn, act),
      up,
      normOut: new GroupNorm(d.child('conv_norm_out'), g, chans[0], EPS),
      convOut: new Conv2d(d.child('conv_out'), chans[0], r.outChannels, 3, 1, 1),
    };
  }

  get scalingFactor(): number {
    return this.resolved.scalingFactor;
  }

  /** Encode NHWC images in [-1, 1] to the posterior's mean/logvar (plain ops; no tidy). */
  runEncode(x: tf.Tensor4D, rec: Recorder = NO_RECORD): { mean: tf.Tensor4D; logvar: tf.Tensor4D } {
    let h = this.enc.convIn.forward(x);
    for (const blk of this.enc.down) {
      for (const r of blk.resnets) h = r.forward(h, null);
      if (blk.down) h = blk.down.forward(h);
      rec.tap(blk.name, h);
    }
    h = this.enc.mid.forward(h, rec);
    rec.tap('encoder.mid_block', h);
    h = this.enc.convOut.forward(silu(this.enc.normOut.forward(h)) as tf.Tensor4D);
    if (this.quantConv) h = this.quantConv.forward(h);
    const [mean, logvar] = tf.split(h, 2, 3) as [tf.Tensor4D, tf.Tensor4D];
    return { mean, logvar: tf.clipByValue(logvar, -30, 20) };
  }

  /** Decode NHWC latents (unscaled) to images (plain ops; no tidy). */
  runDecode(z: tf.Tensor4D, rec: Recorder = NO_RECORD): tf.Tensor4D {
    let h = this.postQuantConv ? this.postQuantConv.forward(z) : z;
    h = this.dec.convIn.forward(h);
    h = this.dec.mid.forward(h, rec);
    rec.tap('decoder.mid_block', h);
    for (const blk of this.dec.up) {
      for (const r of blk.resnets) h = r.forward(h, null);
      if (blk.up) h = blk.up.forward(h);
      rec.tap(blk.name, h);
    }
    return this.dec.convOut.forward(silu(this.dec.normOut.forward(h)) as tf.Tensor4D);
  }

  runEncodeWithTaps(x: tf.Tensor4D, opts: ForwardOptions): VaeEncodeOutput {
    const rec = new Recorder(opts);
    const { mean, logvar } = this.runEncode(x, rec);
    const missing = rec.missing();
    if (missing.length) {
      rec.dispose();
      throw new Error(`unknown tap name(s) ${missing.join(', ')}; available: ${this.tapNames().filter((t) => t.startsWith('encoder')).join(', ')}`);
    }
    return { mean, logvar, features: rec.features };
  }

  runDecodeWithTaps(z: tf.Tensor4D, opts: ForwardOptions): { sample: tf.Tensor4D; features: Map<string, tf.Tensor> } {
    const rec = new Recorder(opts);
    const sample = this.runDecode(z, rec);
    const missing = rec.missing();
    if (missing.length) {
      rec.dispose();
      throw new Error(`unknown tap name(s) ${missing.join(', ')}; available: ${this.tapNames().filter((t) => t.startsWith('decoder')).join(', ')}`);
    }
    return { sample, features: rec.features };
  }

  encode(x: tf.Tensor4D, opts: ForwardOptions = {}): VaeEncodeOutput {
    const rec = opts.taps?.length ? new Recorder(opts) : NO_RECORD;
    const { mean, logvar } = tf.tidy(() => this.runEncode(x, rec));
    const missing = rec.missing();
    if (missing.length) {
      rec.dispose();
      tf.dispose([mean, logvar]);
      throw new Error(`unknown tap name(s) ${missing.join(', ')}; available: ${this.tapNames().filter((t) => t.startsWith('encoder')).join(', ')}`);
    }
    return { mean, logvar, features: rec === NO_RECORD ? new Map() : rec.features };
  }

  decode(z: tf.Tensor4D, opts: ForwardOptions = {}): { sample: tf.Tensor4D; features: Map<string, tf.Tensor> } {
    const rec = opts.taps?.length ? new Recorder(opts) : NO_RECORD;
    const sample = tf.tidy(() => this.runDecode(z, rec));
    const missing = rec.missing();
    if (missing.length) {
      rec.dispose();
      sample.dispose();
      throw new Error(`unknown tap name(s) ${missing.join(', ')}; available: ${this.tapNames().filter((t) => t.startsWith('decoder')).join(', ')}`);
    }
    return { sample, features: rec === NO_RECORD ? new Map() : rec.features };
  }

  tapNames(): string[] {
    return [...this.enc.down.map((d) => d.name), 'encoder.mid_block', 'decoder.mid_block', ...this.dec.up.map((u) => u.name)];
  }

  savePretrained(root: string, opts: { config?: Readonly<Record<string, unknown>> } = {}): Record<string, [string, string]> {
    saveComponent(root, 'vae', 'diffusion_pytorch_model.safetensors', this.store, diffusersConfig('AutoencoderKL', this.config, opts.config));
    return { vae: ['diffusers', 'AutoencoderKL'] };
  }

  dispose(): void {
    this.store.dispose();
  }
}
