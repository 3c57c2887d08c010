/**
 * BasicSR filter2D semantics: cross-correlation (kernel NOT flipped) with reflect padding that
 * does not repeat the edge pixel (torch 'reflect' = tf.mirrorPad 'reflect'), output the input size.
 * Layout NHWC float32.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Kernel } from '../kernels/kernels.js';

/** A kernel as float32 data (the precision BasicSR convolves with). */
export interface KernelData {
  size: number;
  data: Float32Array | Float64Array | readonly number[];
}

/** Reflect-101 source index of padded position `i` (any distance: the reflection repeats). */
function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let m = ((i % period) + period) % period;
  if (m > n - 1) m = period - m;
  return m;
}

/**
 * Reflect padding ('reflect' = BORDER_REFLECT_101). tf.mirrorPad needs the pad to be smaller than
 * the side; tiny images (a 21-tap kernel on an image downscaled to < 11 px) fall back to gathers
 * with repeated reflection instead of failing (torch would raise there).
 */
function reflectPad(x: tf.Tensor4D, ph: number, pw: number): tf.Tensor4D {
  const [, h, w] = x.shape;
  if (ph < h && pw < w) return tf.mirrorPad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]], 'reflect');
  return tf.tidy(() => {
    const rows = Int32Array.from({ length: h + 2 * ph }, (_, i) => reflectIndex(i - ph, h));
    const cols = Int32Array.from({ length: w + 2 * pw }, (_, i) => reflectIndex(i - pw, w));
    return tf.gather(tf.gather(x, tf.tensor1d(rows, 'int32'), 1), tf.tensor1d(cols, 'int32'), 2) as tf.Tensor4D;
  });
}

/**
 * Filter every image of `x` (N,H,W,C) with `kernels`: one kernel shared by all samples or one
 * per sample. Per-sample kernels of equal size run as ONE depthwise convolution by folding the
 * batch into the channel axis (the grouped-convolution trick BasicSR uses).
 */
export function filter2d(x: tf.Tensor4D, kernels: KernelData | Kernel | readonly (KernelData | Kernel)[]): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const list = Array.isArray(kernels) ? (kernels as readonly KernelData[]) : [kernels as KernelData];
  if (list.length !== 1 && list.length !== n) throw new RangeError(`filter2d: ${list.length} kernels for a batch of ${n}`);
  const k = list[0].size;
  if (list.some((kk) => kk.size !== k)) {
    // mixed sizes: one call per sample
    return tf.tidy(() => tf.concat(list.map((kk, i) => filter2d(tf.slice(x, [i, 0, 0, 0], [1, h, w, c]), kk)), 0) as tf.Tensor4D);
  }
  const p = Math.floor(k / 2);
  return tf.tidy(() => {
    if (list.length === 1) {
      const f = new Float32Array(k * k * c);
      const kd = list[0].data;
      for (let i = 0; i < k * k; i++) for (let ch = 0; ch < c; ch++) f[i * c + ch] = kd[i];
      const padded = reflectPad(x, p, p);
      return tf.depthwiseConv2d(padded, tf.tensor4d(f, [k, k, c, 1]), 1, 'valid');
    }
    // fold batch into channels: (N,H,W,C) -> (1,H,W,N*C)
    const folded = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c]);
    const f = new Float32Array(k * k * n * c);
    for (let i = 0; i < k * k; i++) for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) f[i * n * c + b * c + ch] = list[b].data[i];
    const padded = reflectPad(folded as tf.Tensor4D, p, p);
    const y = tf.depthwiseConv2d(padded as tf.Tensor4D, tf.tensor4d(f, [k, k, n * c, 1]), 1, 'valid');
    return tf.transpose(tf.reshape(y, [h, w, n, c]), [2, 0, 1, 3]);
  });
}

/** Separable filtering with a 1-D kernel along rows then columns (same reflect padding). */
export function filterSeparable(x: tf.Tensor4D, k1d: Float32Array | readonly number[]): tf.Tensor4D {
  const c = x.shape[3];
  const k = k1d.length;
  const p = Math.floor(k / 2);
  return tf.tidy(() => {
    const fv = new Float32Array(k * c);
    for (let i = 0; i < k; i++) for (let ch = 0; ch < c; ch++) fv[i * c + ch] = k1d[i];
    const a = tf.depthwiseConv2d(reflectPad(x, p, 0), tf.tensor4d(fv, [k, 1, c, 1]), 1, 'valid');
    return tf.depthwiseConv2d(reflectPad(a, 0, p), tf.tensor4d(fv, [1, k, c, 1]), 1, 'valid');
  });
}
