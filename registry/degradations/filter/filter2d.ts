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

function checkPad(h: number, w: number, k: number): void {
  const p = Math.floor(k / 2);
  if (p >= h || p >= w) {
    throw new RangeError(`filter2d: kernel size ${k} needs an image larger than ${p}x${p} for reflect padding, got ${h}x${w}`);
  }
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
  checkPad(h, w, k);
  const p = Math.floor(k / 2);
  return tf.tidy(() => {
    if (list.length === 1) {
      const f = new Float32Array(k * k * c);
      const kd = list[0].data;
      for (let i = 0; i < k * k; i++) for (let ch = 0; ch < c; ch++) f[i * c + ch] = kd[i];
      const padded = tf.mirrorPad(x, [[0, 0], [p, p], [p, p], [0, 0]], 'reflect');
      return tf.depthwiseConv2d(padded, tf.tensor4d(f, [k, k, c, 1]), 1, 'valid');
    }
    // fold batch into channels: (N,H,W,C) -> (1,H,W,N*C)
    const folded = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c]);
    const f = new Float32Array(k * k * n * c);
    for (let i = 0; i < k * k; i++) for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) f[i * n * c + b * c + ch] = list[b].data[i];
    const padded = tf.mirrorPad(folded, [[0, 0], [p, p], [p, p], [0, 0]], 'reflect');
    const y = tf.depthwiseConv2d(padded as tf.Tensor4D, tf.tensor4d(f, [k, k, n * c, 1]), 1, 'valid');
    return tf.transpose(tf.reshape(y, [h, w, n, c]), [2, 0, 1, 3]);
  });
}

/** Separable filtering with a 1-D kernel along rows then columns (same reflect padding). */
export function filterSeparable(x: tf.Tensor4D, k1d: Float32Array | readonly number[]): tf.Tensor4D {
  const [, h, w, c] = x.shape;
  const k = k1d.length;
  checkPad(h, w, k);
  const p = Math.floor(k / 2);
  return tf.tidy(() => {
    const fv = new Float32Array(k * c);
    for (let i = 0; i < k; i++) for (let ch = 0; ch < c; ch++) fv[i * c + ch] = k1d[i];
    const a = tf.depthwiseConv2d(tf.mirrorPad(x, [[0, 0], [p, p], [0, 0], [0, 0]], 'reflect'), tf.tensor4d(fv, [k, 1, c, 1]), 1, 'valid');
    return tf.depthwiseConv2d(tf.mirrorPad(a, [[0, 0], [0, 0], [p, p], [0, 0]], 'reflect'), tf.tensor4d(fv, [1, k, c, 1]), 1, 'valid');
  });
}
