import { tf, type ConditionalUNet, type LatentAutoencoder } from '../../framework/api.js';
import { ddimTimesteps } from './noise-schedule.js';

export interface DdimOptions {
  /** number of denoising steps (timesteps from `ddimTimesteps`) */
  steps: number;
  /** classifier-free guidance: eps = eps_uncond + g (eps_cond - eps_uncond); 1 uses the conditional prediction only */
  guidanceScale: number;
}

/**
 * Deterministic DDIM (eta = 0) for an epsilon-prediction UNet, as diffusers' DDIMScheduler
 * with SD's settings (leading spacing, steps_offset 1, set_alpha_to_one false, no clipping):
 *   x0  = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)
 *   x_p = sqrt(ab_p) x0 + sqrt(1 - ab_p) eps,  ab_p = alphas_cumprod[t - 1000/steps] (alphas_cumprod[0] past the start).
 * `noise` is x_T ([B, h, w, c], scaled latent space); `cond`/`uncond` are text contexts
 * ([B or 1, tokens, dim]; `uncond` only used when guidanceScale != 1). Returns the final
 * latents (the caller owns them). Runs each step in its own tidy.
 */
export function ddimSample(unet: ConditionalUNet, noise: tf.Tensor4D, cond: tf.Tensor3D, uncond: tf.Tensor3D | null, alphasCumprod: Float64Array, o: DdimOptions): tf.Tensor4D {
  const b = noise.shape[0];
  const ts = ddimTimesteps(o.steps, alphasCumprod.length);
  const ratio = Math.floor(alphasCumprod.length / o.steps);
  const guided = o.guidanceScale !== 1;
  if (guided && !uncond) throw new Error('ddimSample: guidance needs an unconditional context');
  const expand = (c: tf.Tensor3D) => (c.shape[0] === b ? c : (tf.tile(c, [b, 1, 1]) as tf.Tensor3D));
  let x = tf.clone(noise);
  for (const t of ts) {
    const ab = alphasCumprod[t] as number;
    const prev = t - ratio;
    const abPrev = prev >= 0 ? (alphasCumprod[prev] as number) : (alphasCumprod[0] as number);
    const next = tf.tidy(() => {
      let eps: tf.Tensor4D;
      if (guided) {
        const both = unet.run(tf.concat([x, x], 0) as tf.Tensor4D, t, tf.concat([expand(uncond as tf.Tensor3D), expand(cond)], 0) as tf.Tensor3D);
        const [eu, ec] = tf.split(both, 2, 0) as [tf.Tensor4D, tf.Tensor4D];
        eps = tf.add(eu, tf.mul(tf.sub(ec, eu), o.guidanceScale)) as tf.Tensor4D;
      } else {
        eps = unet.run(x, t, expand(cond));
      }
      const x0 = tf.div(tf.sub(x, tf.mul(eps, Math.sqrt(1 - ab))), Math.sqrt(ab));
      return tf.add(tf.mul(x0, Math.sqrt(abPrev)), tf.mul(eps, Math.sqrt(1 - abPrev))) as tf.Tensor4D;
    });
    x.dispose();
    x = next;
  }
  return x;
}

/** Scaled latents -> images in [-1, 1] (NHWC). */
export function decodeLatents(vae: LatentAutoencoder, latents: tf.Tensor4D, scalingFactor: number): tf.Tensor4D {
  return tf.tidy(() => tf.clipByValue(vae.runDecode(tf.div(latents, scalingFactor) as tf.Tensor4D), -1, 1) as tf.Tensor4D);
}
