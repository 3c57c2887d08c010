import * as tf from '@tensorflow/tfjs-core';
import { definePlugin, UserError, type ComponentNode } from '../../../framework/api.js';
import type { ConditionalUNet, LatentAutoencoder, OneStepRestorer, PromptEncoder, TapOptions, TapResult } from '../../../framework/api.js';
import { alphaBar } from './one-step.js';

/**
 * The OSEDiff-style one-step restorer as a configured component (see the OneStepRestorer
 * contract). Built from three backbone nodes; the UNet's parameters are its `store`, so an
 * adapter attached to the restorer lands where OSEDiff/SCR put it and saves with diffusers' names.
 */
export class OneStep implements OneStepRestorer {
  readonly type = 'one-step';
  private readonly sqrtAb: number;
  private readonly sqrtOneMinusAb: number;
  constructor(
    readonly unet: ConditionalUNet,
    readonly vae: LatentAutoencoder,
    readonly textEncoder: PromptEncoder,
    readonly timestep: number,
    readonly predictionType: 'epsilon' | 'v_prediction' | 'sample',
  ) {
    const ab = alphaBar(timestep);
    this.sqrtAb = Math.sqrt(ab);
    this.sqrtOneMinusAb = Math.sqrt(1 - ab);
  }

  get store() {
    return this.unet.store;
  }

  run(lq: tf.Tensor4D, context: tf.Tensor3D, opts?: TapOptions): TapResult & { image: tf.Tensor4D } {
    const { mean } = this.vae.runEncode(lq);
    const z = tf.mul(mean, this.vae.scalingFactor) as tf.Tensor4D;
    const ctx = this.batchContext(context, lq.shape[0]);
    const out = opts ? this.unet.runWithTaps(z, this.timestep, ctx, opts) : { sample: this.unet.run(z, this.timestep, ctx), features: new Map(), attention: new Map() };
    const img = this.vae.runDecode(tf.div(this.x0(z, out.sample), this.vae.scalingFactor) as tf.Tensor4D);
    return { image: tf.clipByValue(img, -1, 1), features: out.features, attention: out.attention };
  }

  features(lq: tf.Tensor4D, context: tf.Tensor3D, taps: readonly string[]): Map<string, tf.Tensor> {
    const known = new Set(this.tapNames());
    const unknown = taps.filter((t) => !known.has(t));
    if (unknown.length) throw new UserError(`unknown feature tap(s) ${unknown.join(', ')}; this backbone has: ${[...known].join(', ')}`);
    const pick = (prefix: string) => taps.filter((t) => t.startsWith(prefix)).map((t) => t.slice(prefix.length));
    const out = new Map<string, tf.Tensor>();
    const put = (prefix: string, m: Map<string, tf.Tensor>) => {
      for (const [k, v] of m) out.set(`${prefix}${k}`, v);
    };
    const enc = this.vae.runEncodeWithTaps(lq, { taps: pick('vae.').filter((t) => t.startsWith('encoder.')) });
    put('vae.', enc.features);
    const z = tf.mul(enc.mean, this.vae.scalingFactor) as tf.Tensor4D;
    const ctx = this.batchContext(context, lq.shape[0]);
    const unetTaps = pick('unet.');
    const decTaps = pick('vae.').filter((t) => t.startsWith('decoder.'));
    const u = unetTaps.length || decTaps.length ? this.unet.runWithTaps(z, this.timestep, ctx, { taps: unetTaps }) : null;
    if (u) put('unet.', u.features);
    if (u && decTaps.length) put('vae.', this.vae.runDecodeWithTaps(tf.div(this.x0(z, u.sample), this.vae.scalingFactor) as tf.Tensor4D, { taps: decTaps }).features);
    return out;
  }

  tapNames(): string[] {
    return [...this.vae.tapNames().map((t) => `vae.${t}`), ...this.unet.tapNames().map((t) => `unet.${t}`)];
  }

  private batchContext(context: tf.Tensor3D, b: number): tf.Tensor3D {
    return context.shape[0] === b ? context : (tf.tile(context, [b, 1, 1]) as tf.Tensor3D);
  }

  /** One DDPM step from t straight to 0: the x0 estimate from the UNet's prediction. */
  private x0(z: tf.Tensor4D, pred: tf.Tensor4D): tf.Tensor4D {
    return (
      this.predictionType === 'epsilon'
        ? tf.div(tf.sub(z, tf.mul(pred, this.sqrtOneMinusAb)), this.sqrtAb)
        : this.predictionType === 'v_prediction'
          ? tf.sub(tf.mul(z, this.sqrtAb), tf.mul(pred, this.sqrtOneMinusAb))
          : pred
    ) as tf.Tensor4D;
  }

  dispose(): void {
    this.unet.dispose();
    this.vae.dispose();
    this.textEncoder.dispose();
  }
}

const backboneNode = (name: string) => ({
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string', pattern: '^backbone/' } },
  default: { type: `backbone/${name}`, preset: 'tiny' },
}) as const;

export const oneStepPlugin = definePlugin({
  kind: 'backbone',
  name: 'one-step',
  description: 'OSEDiff-style one-step restorer: VAE encode -> UNet at a fixed timestep with a prompt -> x0 -> VAE decode',
  docs: `Composes \`unet\`, \`vae\` and \`text_encoder\` backbone nodes. The LQ image (NHWC, [-1, 1]) is encoded
(posterior mean x scaling factor), the UNet predicts at \`timestep\` (999: pure noise level, as OSEDiff), the
x0 estimate of one DDPM step is decoded. Adapters attached to this component go on the UNet.`,
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      unet: backboneNode('unet2d-condition'),
      vae: backboneNode('autoencoder-kl'),
      text_encoder: backboneNode('clip-text'),
      timestep: { type: 'integer', minimum: 0, maximum: 999, default: 999, description: 'UNet timestep of the single step (0..999).' },
      prediction_type: { enum: ['epsilon', 'v_prediction', 'sample'], default: 'epsilon', description: 'What the UNet predicts (SD 2.1-base: epsilon).' },
    },
  } as const,
  async create(o, ctx) {
    const unet = await ctx.build<ConditionalUNet>(o.unet as ComponentNode, { expectKind: 'backbone', path: `${ctx.path}.unet` });
    const vae = await ctx.build<LatentAutoencoder>(o.vae as ComponentNode, { expectKind: 'backbone', path: `${ctx.path}.vae` });
    const text = await ctx.build<PromptEncoder>(o.text_encoder as ComponentNode, { expectKind: 'backbone', path: `${ctx.path}.text_encoder` });
    const check = (ok: boolean, key: string, what: string) => {
      if (!ok) {
        unet.dispose();
        vae.dispose();
        text.dispose();
        throw new UserError(`${ctx.path}.${key}: expected ${what}`);
      }
    };
    check(typeof unet.runWithTaps === 'function', 'unet', 'a conditional UNet (backbone/unet2d-condition or compatible)');
    check(typeof vae.runEncode === 'function' && typeof vae.runDecode === 'function', 'vae', 'a latent autoencoder (backbone/autoencoder-kl or compatible)');
    check(typeof text.encodeText === 'function', 'text_encoder', 'a prompt encoder (backbone/clip-text or compatible)');
    return new OneStep(unet, vae, text, o.timestep, o.prediction_type);
  },
});
