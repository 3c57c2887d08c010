/**
 * Differentiable SSIM as BasicSR computes it (calculate_ssim / _ssim_pth): an 11x11 Gaussian
 * window (sigma 1.5, cv2.getGaussianKernel normalisation, shared with registry/metrics/common/psnr-ssim.ts),
 * statistics over the VALID region only (no padding: 5 px trimmed per side), per-pixel SSIM map
 * averaged over pixels, channels and the batch. Computed on [0, 1] (inputs in [-1, 1] mapped with
 * (x + 1) / 2, NOT clamped so out-of-range predictions still get a gradient), with
 * C1 = (K1)^2, C2 = (K2)^2 -- BasicSR's (K 255)^2 on [0, 255], the same SSIM.
 * The window is separable: one depthwise row pass and one column pass over the five filtered
 * quantities (x, y, x^2, y^2, xy) stacked along channels.
 */
import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../../../framework/api.js';
import { SSIM_GAUSSIAN, SSIM_K1, SSIM_K2 } from '../../metrics/common/psnr-ssim.js';

export const SSIM_WINDOW = SSIM_GAUSSIAN.length;

/** Mean SSIM of NHWC images in [0, 1] (a scalar tensor, plain ops). */
export function ssimMean(x: tf.Tensor4D, y: tf.Tensor4D): tf.Scalar {
  const [, H, W, C] = x.shape;
  if (H < SSIM_WINDOW || W < SSIM_WINDOW) {
    throw new UserError(`loss/ssim: images are ${H}x${W}, smaller than the ${SSIM_WINDOW}x${SSIM_WINDOW} SSIM window (crop or resize to at least ${SSIM_WINDOW} px per side)`);
  }
  const C1 = SSIM_K1 ** 2;
  const C2 = SSIM_K2 ** 2;
  const q = 5 * C;
  const g = Float32Array.from(SSIM_GAUSSIAN);
  // depthwise filters [kh, kw, channels, 1]: the same 1-D window for each of the 5C planes
  const rowK = tf.tile(tf.tensor4d(g, [1, SSIM_WINDOW, 1, 1]), [1, 1, q, 1]) as tf.Tensor4D;
  const colK = tf.tile(tf.tensor4d(g, [SSIM_WINDOW, 1, 1, 1]), [1, 1, q, 1]) as tf.Tensor4D;
  const stacked = tf.concat([x, y, tf.square(x), tf.square(y), tf.mul(x, y)], 3) as tf.Tensor4D;
  const f = tf.depthwiseConv2d(tf.depthwiseConv2d(stacked, rowK, 1, 'valid'), colK, 1, 'valid');
  const [mx, my, exx, eyy, exy] = tf.split(f, 5, 3);
  const mx2 = tf.square(mx);
  const my2 = tf.square(my);
  const mxy = tf.mul(mx, my);
  const num = tf.mul(tf.add(tf.mul(mxy, 2), C1), tf.add(tf.mul(tf.sub(exy, mxy), 2), C2));
  const den = tf.mul(tf.add(tf.add(mx2, my2), C1), tf.add(tf.add(tf.sub(exx, mx2), tf.sub(eyy, my2)), C2));
  return tf.mean(tf.div(num, den));
}

/** 1 - SSIM of NHWC images in [-1, 1]. */
export function ssimLossValue(pred: tf.Tensor4D, target: tf.Tensor4D): tf.Scalar {
  const to01 = (t: tf.Tensor4D) => tf.mul(tf.add(t, 1), 0.5) as tf.Tensor4D;
  return tf.sub(1, ssimMean(to01(pred), to01(target)));
}
