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
 * Polyphase ("space-to-depth") form of one k x k filter on a reflect-padded batch: the padded
 * image is cut into s x s phases that become s*s channels, and the filter becomes an ordinary
 * convolution with s*s in and out channels and ceil((k+s-1)/s)^2 taps. It does ~(k+s-1)^2/k^2
 * times the multiply-adds of the direct form, but as a dense GEMM-shaped convolution it runs
 * 5-10x faster than a large depthwise kernel on the wasm backend (measured: k=21 on 512x512,
 * 65 ms vs 630 ms). Each image channel is an item of the convolution batch.
 */
const PHASES = 4;
/**
 * The polyphase form's sizes: the reflect padding, the taps per phase (ty, tx), the output
 * phase grid (oh, ow) and the padded input's phase grid (gh, gw).
 */
function polyphaseGeometry(h: number, w: number, kh: number, kw: number, sy: number, sx: number) {
  const ty = Math.ceil((kh + sy - 1) / sy);
  const tx = Math.ceil((kw + sx - 1) / sx);
  const oh = Math.ceil(h / sy);
  const ow = Math.ceil(w / sx);
  return { pyPad: Math.floor(kh / 2), pxPad: Math.floor(kw / 2), ty, tx, oh, ow, gh: oh + ty - 1, gw: ow + tx - 1 };
}

/**
 * One kh x kw filter (row-major `kd`) on every image channel with reflect padding, in polyphase
 * form with sy x sx phases (a 1-D filter uses phases along its own axis only). `form`: the
 * padding and phase split as tensor ops (native) or as JS passes (wasm, cpu).
 */
export function filterPolyphase(x: tf.Tensor4D, kd: ArrayLike<number>, kh: number, kw: number, sy = PHASES, sx = PHASES, form: 'ops' | 'host' = tf.getBackend() === 'tensorflow' ? 'ops' : 'host'): tf.Tensor4D {
  if (form === 'ops') return filterPolyphaseOps(x, kd, kh, kw, sy, sx);
  const ss = sy * sx;
  const [n, h, w, c] = x.shape;
  const { pyPad, pxPad, oh, ow, gh, gw } = polyphaseGeometry(h, w, kh, kw, sy, sx);
  // reflect padding and the phase split in one pass (plain loops: 5-D transposes are slow on
  // wasm); positions past the reflect-padded image are zeros that only feed cropped outputs
  const src = x.dataSync() as Float32Array;
  const rowIdx = Int32Array.from({ length: gh * sy }, (_, i) => (i < h + 2 * pyPad ? reflectIndex(i - pyPad, h) : -1));
  const colIdx = Int32Array.from({ length: gw * sx }, (_, i) => (i < w + 2 * pxPad ? reflectIndex(i - pxPad, w) : -1));
  const phased = new Float32Array(n * c * gh * gw * ss);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) {
    const item = (b * c + ch) * gh * gw * ss;
    for (let py = 0; py < gh * sy; py++) {
      const srcY = rowIdx[py];
      if (srcY < 0) continue;
      const gy = (py / sy) | 0;
      const rowBase = item + gy * gw * ss + (py - gy * sy) * sx;
      const srcRow = (b * h + srcY) * w;
      for (let px = 0; px < gw * sx; px++) {
        const srcX = colIdx[px];
        if (srcX < 0) continue;
        const gx = (px / sx) | 0;
        phased[rowBase + gx * ss + (px - gx * sx)] = src[(srcRow + srcX) * c + ch];
      }
    }
  }
  const conv = tf.tidy(() => tf.conv2d(tf.tensor4d(phased, [n * c, gh, gw, ss]), polyphaseWeights(kd, kh, kw, sy, sx), 1, 'valid'));
  const res = conv.dataSync() as Float32Array; // (n*c, oh, ow, sy*sx)
  conv.dispose();
  const out = new Float32Array(n * h * w * c);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) {
    const item = (b * c + ch) * oh * ow * ss;
    for (let y = 0; y < h; y++) {
      const gy = (y / sy) | 0;
      const rowBase = item + gy * ow * ss + (y - gy * sy) * sx;
      for (let xx = 0; xx < w; xx++) {
        const gx = (xx / sx) | 0;
        out[((b * h + y) * w + xx) * c + ch] = res[rowBase + gx * ss + (xx - gx * sx)];
      }
    }
  }
  return tf.tensor4d(out, [n, h, w, c]);
}

/**
 * The polyphase filter's weights [ty, tx, sy*sx, sy*sx]: input phase (ci, di) at tap (iy, ix)
 * feeds output phase (a, b) with the kernel entry at (iy*sy + ci - a, ix*sx + di - b).
 */
function polyphaseWeights(kd: ArrayLike<number>, kh: number, kw: number, sy: number, sx: number): tf.Tensor4D {
  const ss = sy * sx;
  const { ty, tx } = polyphaseGeometry(0, 0, kh, kw, sy, sx);
  const wts = new Float32Array(ty * tx * ss * ss);
  for (let iy = 0; iy < ty; iy++) for (let ix = 0; ix < tx; ix++) for (let ci = 0; ci < sy; ci++) for (let di = 0; di < sx; di++) {
    const inCh = ((iy * tx + ix) * ss + ci * sx + di) * ss;
    for (let a = 0; a < sy; a++) for (let b = 0; b < sx; b++) {
      const dy = iy * sy + ci - a;
      const dx = ix * sx + di - b;
      if (dy >= 0 && dy < kh && dx >= 0 && dx < kw) wts[inCh + a * sx + b] = kd[dy * kw + dx];
    }
  }
  return tf.tensor4d(wts, [ty, tx, ss, ss]);
}

/**
 * The polyphase form with the padding, the phase split and its inverse as tensor ops: on
 * native TensorFlow these reshapes and 5-D transposes run multi-threaded in a few
 * milliseconds, where the two JS passes over the image took ~30 ms per 512x512 image (on wasm
 * the transposes are the slow part, so the JS form stays there). The convolution gets the
 * same input values and weights as the JS form: the results are the same to the bit.
 */
function filterPolyphaseOps(x: tf.Tensor4D, kd: ArrayLike<number>, kh: number, kw: number, sy: number, sx: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const { pyPad, pxPad, oh, ow, gh, gw } = polyphaseGeometry(h, w, kh, kw, sy, sx);
    // each image channel a batch item; reflect padding, then zeros up to the phase grid (they
    // only feed cropped outputs)
    const items = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [n * c, h, w, 1]) as tf.Tensor4D;
    const padded = tf.pad(reflectPad(items, pyPad, pxPad), [[0, 0], [0, gh * sy - (h + 2 * pyPad)], [0, gw * sx - (w + 2 * pxPad)], [0, 0]]);
    // phase (a, b) of grid cell (gy, gx) -> channel a * sx + b
    const phased = tf.reshape(tf.transpose(tf.reshape(padded, [n * c, gh, sy, gw, sx]), [0, 1, 3, 2, 4]), [n * c, gh, gw, sy * sx]) as tf.Tensor4D;
    const conv = tf.conv2d(phased, polyphaseWeights(kd, kh, kw, sy, sx), 1, 'valid'); // [n*c, oh, ow, sy*sx]
    const merged = tf.reshape(tf.transpose(tf.reshape(conv, [n * c, oh, ow, sy, sx]), [0, 1, 3, 2, 4]), [n * c, oh * sy, ow * sx]);
    return tf.transpose(tf.reshape(tf.slice(merged, [0, 0, 0], [n * c, h, w]), [n, c, h, w]), [0, 2, 3, 1]) as tf.Tensor4D;
  });
}

/** Below this size the direct depthwise form is as fast as the polyphase one (on wasm). */
const POLYPHASE_MIN_K = 7;

/**
 * The same threshold for a 2-D kernel on the current backend: native TensorFlow's depthwise
 * kernel is much faster than wasm's. Measured on 512x512x3 with the polyphase form as tensor
 * ops (filterPolyphaseOps), depthwise vs polyphase: 12.6 vs 17.0 ms at k = 9, 14.6 vs 13.0 at
 * 13, 22.3 vs 14.1 at 15, 33.3 vs 16.4 at 19; k = 13 is about even, so the threshold stays 15.
 */
function polyphaseMinK2d(): number {
  return tf.getBackend() === 'tensorflow' ? 15 : POLYPHASE_MIN_K;
}

/**
 * Filter every image of `x` (N,H,W,C) with `kernels`: one kernel shared by all samples or one
 * per sample. Small per-sample kernels run as ONE depthwise convolution by folding the batch
 * into the channel axis (the grouped-convolution trick BasicSR uses); large ones use the
 * polyphase form per sample.
 */
export function filter2d(x: tf.Tensor4D, kernels: KernelData | Kernel | readonly (KernelData | Kernel)[]): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const list = Array.isArray(kernels) ? (kernels as readonly KernelData[]) : [kernels as KernelData];
  if (list.length !== 1 && list.length !== n) throw new RangeError(`filter2d: ${list.length} kernels for a batch of ${n}`);
  const k = list[0].size;
  const mixed = list.some((kk) => kk.size !== k);
  const minK = polyphaseMinK2d();
  if (mixed || (k >= minK && list.length > 1)) {
    return tf.tidy(() => tf.concat(list.map((kk, i) => filter2d(tf.slice(x, [i, 0, 0, 0], [1, h, w, c]), kk)), 0) as tf.Tensor4D);
  }
  if (k >= minK) return filterPolyphase(x, list[0].data as ArrayLike<number>, k, k);
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
    const y = tf.depthwiseConv2d(padded, tf.tensor4d(f, [k, k, n * c, 1]), 1, 'valid');
    return tf.transpose(tf.reshape(y, [h, w, n, c]), [2, 0, 1, 3]);
  });
}

/** Separable filtering with a 1-D kernel along rows then columns (same reflect padding). */
export function filterSeparable(x: tf.Tensor4D, k1d: Float32Array | readonly number[]): tf.Tensor4D {
  const c = x.shape[3];
  const k = k1d.length;
  const p = Math.floor(k / 2);
  if (k >= POLYPHASE_MIN_K) {
    // 1-D polyphase passes (8 phases along the filtered axis): long USM kernels (51 taps) run
    // several times faster than as depthwise convolutions on wasm
    const a = filterPolyphase(x, k1d, k, 1, 8, 1);
    const out = filterPolyphase(a, k1d, 1, k, 1, 8);
    a.dispose();
    return out;
  }
  return tf.tidy(() => {
    const fv = new Float32Array(k * c);
    for (let i = 0; i < k; i++) for (let ch = 0; ch < c; ch++) fv[i * c + ch] = k1d[i];
    const a = tf.depthwiseConv2d(reflectPad(x, p, 0), tf.tensor4d(fv, [k, 1, c, 1]), 1, 'valid');
    return tf.depthwiseConv2d(reflectPad(a, 0, p), tf.tensor4d(fv, [1, k, c, 1]), 1, 'valid');
  });
}
