/**
 * Unsharp masking with BasicSR USMSharp semantics: Gaussian blur (cv2.getGaussianKernel(k, 0),
 * even radius bumped to odd), residual = img - blur, mask = |residual|*255 > threshold (strict),
 * soft mask = the mask blurred with the same kernel, out = soft*clip(img + w*res, 0, 1) + (1-soft)*img.
 * The 2-D kernel is an outer product, so both blurs run as two 1-D passes. NHWC.
 */
import * as tf from '@tensorflow/tfjs-core';
import { filterSeparable } from '../common/filter2d.js';

const CV2_FIXED: Record<number, number[]> = {
  1: [1],
  3: [0.25, 0.5, 0.25],
  5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
  7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
};

/** cv2.getGaussianKernel(ksize, sigma) in float64 (sigma <= 0: OpenCV's default / fixed tables). */
export function cv2GaussianKernel1d(ksize: number, sigma = 0): Float64Array {
  if (sigma <= 0 && CV2_FIXED[ksize]) return Float64Array.from(CV2_FIXED[ksize]);
  const s = sigma > 0 ? sigma : 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8;
  const k = new Float64Array(ksize);
  let sum = 0;
  for (let i = 0; i < ksize; i++) {
    const x = i - (ksize - 1) / 2;
    k[i] = Math.exp(-(x * x) / (2 * s * s));
    sum += k[i];
  }
  for (let i = 0; i < ksize; i++) k[i] /= sum;
  return k;
}

export interface UsmOptions {
  radius: number;
  sigma: number;
  weight: number;
  threshold: number;
}

export function usmKernel1d(radius: number, sigma = 0): Float32Array {
  const k = radius % 2 === 0 ? radius + 1 : radius;
  return Float32Array.from(cv2GaussianKernel1d(k, sigma));
}

/** USM sharpening of a batch; `parts` also returns blur, mask and soft mask (for checks). */
export function usmSharp(x: tf.Tensor4D, o: UsmOptions): tf.Tensor4D {
  return tf.tidy(() => usmSharpParts(x, o).output);
}

export function usmSharpParts(x: tf.Tensor4D, o: UsmOptions): { output: tf.Tensor4D; blur: tf.Tensor4D; mask: tf.Tensor4D; softMask: tf.Tensor4D } {
  const k = usmKernel1d(o.radius, o.sigma);
  const blur = filterSeparable(x, k);
  const residual = tf.sub(x, blur);
  const mask = tf.cast(tf.greater(tf.mul(tf.abs(residual), 255), o.threshold), 'float32') as tf.Tensor4D;
  const softMask = filterSeparable(mask, k);
  const sharp = tf.clipByValue(tf.add(x, tf.mul(residual, o.weight)), 0, 1);
  const output = tf.add(tf.mul(softMask, sharp), tf.mul(tf.sub(1, softMask), x)) as tf.Tensor4D;
  return { output, blur, mask, softMask };
}
