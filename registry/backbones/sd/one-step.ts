import * as tf from '@tensorflow/tfjs-core';
import type { UNet2DConditionModel } from './unet.js';
import type { AutoencoderKL } from './vae.js';
import type { Recorder } from './taps.js';

/** SD's "scaled_linear" beta schedule: alpha-bar at integer timestep t (1000 steps). */
export function alphaBar(t: number, betaStart = 0.00085, betaEnd = 0.012, steps = 1000): number {
  let prod = 1;
  const a = Math.sqrt(betaStart);
  const b = Math.sqrt(betaEnd);
  for (let i = 0; i <= t; i++) {
    const beta = (a + ((b - a) * i) / (steps - 1)) ** 2;
    prod *= 1 - beta;
  }
  return prod;
}

/**
 * OSEDiff-style one-step restorer: LQ image -> VAE encoder (posterior mean x scaling
 * factor) -> UNet (LoRA-adapted by the caller) at a fixed timestep with a fixed text
 * embedding -> x0 from the epsilon prediction (the single DDPM step from t to 0) -> VAE decoder.
 * Images are NHWC in [-1, 1].
 */
export class OneStepRestorer {
  private readonly sqrtAb: number;
  private readonly sqrtOneMinusAb: number;
  constructor(
    readonly vae: AutoencoderKL,
    readonly unet: UNet2DConditionModel,
    /** [1 or B, tokens, cross_attention_dim]; owned by the caller. */
    readonly context: tf.Tensor3D,
    readonly timestep = 999,
    /** What the UNet predicts: `epsilon` (SD 2.1-base) or `v_prediction` (SD 2.1 768). */
    readonly predictionType: 'epsilon' | 'v_prediction' = 'epsilon',
  ) {
    const ab = alphaBar(timestep);
    this.sqrtAb = Math.sqrt(ab);
    this.sqrtOneMinusAb = Math.sqrt(1 - ab);
  }

  /** The forward as plain ops (call inside tf.tidy or a gradient function). */
  run(lq: tf.Tensor4D, rec?: Recorder): tf.Tensor4D {
    const b = lq.shape[0];
    const { mean } = this.vae.runEncode(lq, rec);
    const z = tf.mul(mean, this.vae.scalingFactor) as tf.Tensor4D;
    const ctx = this.context.shape[0] === b ? this.context : (tf.tile(this.context, [b, 1, 1]) as tf.Tensor3D);
    const pred = this.unet.run(z, this.timestep, ctx, rec);
    // the DDPM step from t straight to 0 returns the x0 estimate
    const x0 = (
      this.predictionType === 'epsilon'
        ? tf.div(tf.sub(z, tf.mul(pred, this.sqrtOneMinusAb)), this.sqrtAb)
        : tf.sub(tf.mul(z, this.sqrtAb), tf.mul(pred, this.sqrtOneMinusAb))
    ) as tf.Tensor4D;
    const img = this.vae.runDecode(tf.div(x0, this.vae.scalingFactor) as tf.Tensor4D, rec);
    return tf.clipByValue(img, -1, 1);
  }

  restore(lq: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.run(lq));
  }
}
