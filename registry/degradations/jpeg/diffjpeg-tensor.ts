/**
 * DiffJPEG built from tfjs ops only, so gradients flow through it (use it inside a loss or a
 * trainable graph; `differentiable: true` replaces rounding by round(x) + (x - round(x))^3).
 * Same semantics as diffJpeg in diffjpeg.ts (the fast forward-only version the pipeline uses);
 * both are checked against the same fixtures.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DIFFJPEG_C_TABLE, DIFFJPEG_Y_TABLE, qualityToFactor } from './diffjpeg.js';

const f32 = Math.fround;

/** 64x64 DCT basis B[(x*8+y), (u*8+v)] = cos((2x+1)u pi/16) cos((2y+1)v pi/16), and the 0.25 a(u) a(v) scale. */
function dctBasis(): { basis: Float32Array; scale: Float32Array } {
  const basis = new Float32Array(64 * 64);
  for (let x = 0; x < 8; x++) for (let y = 0; y < 8; y++) for (let u = 0; u < 8; u++) for (let v = 0; v < 8; v++) {
    basis[(x * 8 + y) * 64 + u * 8 + v] = Math.cos(((2 * x + 1) * u * Math.PI) / 16) * Math.cos(((2 * y + 1) * v * Math.PI) / 16);
  }
  const alpha = [1 / Math.SQRT2, 1, 1, 1, 1, 1, 1, 1];
  const scale = new Float32Array(64);
  for (let u = 0; u < 8; u++) for (let v = 0; v < 8; v++) scale[u * 8 + v] = f32(alpha[u] * alpha[v]) * 0.25;
  return { basis, scale };
}
const DCT = dctBasis();
const ALPHA2 = (() => {
  const a = [f32(1 / Math.SQRT2), 1, 1, 1, 1, 1, 1, 1];
  const o = new Float32Array(64);
  for (let u = 0; u < 8; u++) for (let v = 0; v < 8; v++) o[u * 8 + v] = f32(a[u] * a[v]);
  return o;
})();

function toBlocks(plane: tf.Tensor3D): tf.Tensor3D {
  const [n, h, w] = plane.shape;
  return tf.reshape(tf.transpose(tf.reshape(plane, [n, h / 8, 8, w / 8, 8]), [0, 1, 3, 2, 4]), [n, (h / 8) * (w / 8), 64]);
}
function fromBlocks(blocks: tf.Tensor3D, h: number, w: number): tf.Tensor3D {
  const n = blocks.shape[0];
  return tf.reshape(tf.transpose(tf.reshape(blocks, [n, h / 8, w / 8, 8, 8]), [0, 1, 3, 2, 4]), [n, h, w]);
}

function roundHalfEvenT(x: tf.Tensor): tf.Tensor {
  // tf.round is already banker's rounding (half to even), like torch.round
  return tf.round(x);
}

/** Compress-decompress one plane (N,h,w), h and w multiples of 8, with per-sample tables (N,64). */
function codePlane(plane: tf.Tensor3D, tables: tf.Tensor2D, differentiable: boolean): tf.Tensor3D {
  const [n, h, w] = plane.shape;
  const blocks = toBlocks(tf.sub(plane, 128) as tf.Tensor3D); // (N, B, 64)
  const nb = blocks.shape[1];
  const basis = tf.tensor2d(DCT.basis, [64, 64]);
  const coef = tf.mul(tf.reshape(tf.matMul(tf.reshape(blocks, [n * nb, 64]), basis), [n, nb, 64]), tf.tensor1d(DCT.scale));
  const t = tf.reshape(tables, [n, 1, 64]);
  const d = tf.div(coef, t);
  const r = roundHalfEvenT(d);
  const q = differentiable ? tf.add(r, tf.pow(tf.sub(d, r), 3)) : r;
  const deq = tf.mul(tf.mul(q, t), tf.tensor1d(ALPHA2));
  const pix = tf.add(tf.mul(tf.reshape(tf.matMul(tf.reshape(deq, [n * nb, 64]), basis, false, true), [n, nb, 64]), 0.25), 128);
  return fromBlocks(pix as tf.Tensor3D, h, w);
}

/**
 * DiffJPEG of a batch (N,H,W,3) float32 RGB in [0,1] at per-sample `quality` (a number or one
 * per sample). Output float32 [0,1], not rounded to 8 bits.
 */
export function diffJpegTensor(x: tf.Tensor4D, quality: number | readonly number[], differentiable = false): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (c !== 3) throw new RangeError(`diffJpeg expects 3 channels, got ${c}`);
  const qs = typeof quality === 'number' ? new Array<number>(n).fill(quality) : [...quality];
  if (qs.length !== n) throw new RangeError(`diffJpeg: ${qs.length} qualities for a batch of ${n}`);
  const ph = Math.ceil(h / 16) * 16;
  const pw = Math.ceil(w / 16) * 16;
  const yt = new Float32Array(n * 64);
  const ct = new Float32Array(n * 64);
  qs.forEach((q, i) => {
    const fac = f32(qualityToFactor(q));
    for (let k = 0; k < 64; k++) {
      yt[i * 64 + k] = f32(DIFFJPEG_Y_TABLE[k] * fac);
      ct[i * 64 + k] = f32(DIFFJPEG_C_TABLE[k] * fac);
    }
  });
  return tf.tidy(() => {
    let img = tf.mul(x, 255);
    if (ph !== h || pw !== w) img = tf.pad(img, [[0, 0], [0, ph - h], [0, pw - w], [0, 0]]);
    const toYcc = tf.tensor2d([0.299, -0.168736, 0.5, 0.587, -0.331264, -0.418688, 0.114, 0.5, -0.081312], [3, 3]);
    const ycc = tf.add(tf.reshape(tf.matMul(tf.reshape(img, [-1, 3]), toYcc), [n, ph, pw, 3]), tf.tensor1d([0, 128, 128]));
    const [y, cb, cr] = tf.split(ycc, 3, 3) as tf.Tensor4D[];
    const sub = (p: tf.Tensor4D) => tf.reshape(tf.avgPool(p, 2, 2, 'valid'), [n, ph / 2, pw / 2]) as tf.Tensor3D;
    const yOut = codePlane(tf.reshape(y, [n, ph, pw]) as tf.Tensor3D, tf.tensor2d(yt, [n, 64]), differentiable);
    // Nearest 2x chroma upsampling as a rank-4 tile (batch and rows folded): tfjs's Tile gradient
    // only exists up to rank 4, and a rank-5 tile here made `differentiable: true` untrainable.
    const up = (p: tf.Tensor3D) => tf.reshape(tf.tile(tf.reshape(p, [n * (ph / 2), 1, pw / 2, 1]), [1, 2, 1, 2]), [n, ph, pw]);
    const cbOut = up(codePlane(sub(cb), tf.tensor2d(ct, [n, 64]), differentiable));
    const crOut = up(codePlane(sub(cr), tf.tensor2d(ct, [n, 64]), differentiable));
    const stacked = tf.sub(tf.stack([yOut, cbOut, crOut], 3), tf.tensor1d([0, 128, 128]));
    const toRgb = tf.tensor2d([1, 1, 1, 0, -0.344136, 1.772, 1.402, -0.714136, 0], [3, 3]);
    let rgb = tf.reshape(tf.matMul(tf.reshape(stacked, [-1, 3]), toRgb), [n, ph, pw, 3]);
    rgb = tf.div(tf.clipByValue(rgb, 0, 255), 255);
    if (ph !== h || pw !== w) rgb = tf.slice(rgb, [0, 0, 0, 0], [n, h, w, 3]);
    return rgb as tf.Tensor4D;
  });
}
