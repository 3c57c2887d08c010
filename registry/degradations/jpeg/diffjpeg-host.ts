/**
 * Differentiable JPEG with BasicSR DiffJPEG semantics (not libjpeg): RGB [0,1] -> x255, zero-pad
 * bottom/right to multiples of 16, YCbCr (no rounding), 4:2:0 chroma by 2x2 mean, float 8x8
 * DCT, quantization by the TRANSPOSED Annex K tables times a quality factor (unrounded,
 * unclamped), round half-to-even (or the cubic straight-through approximation), inverse
 * steps, nearest chroma upsampling, clamp to [0,255], /255. Quality is per sample. NHWC.
 *
 * This module is the host computation on plain arrays, without tfjs: diffjpeg.ts runs it on the
 * main thread and, for the lower half of each image, on a helper thread (jpeg-worker.ts).
 */
import { roundHalfEven } from '../../../framework/host.js';

const f32 = Math.fround;

// Standard JPEG Annex K tables (row = vertical frequency); DiffJPEG uses their transposes.
const ANNEX_K_LUMA = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
  18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
function chromaTable(): number[] {
  const t = new Array<number>(64).fill(99);
  const top = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]];
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) t[r * 8 + c] = top[r][c];
  return t;
}
function transpose8(t: readonly number[]): number[] {
  const o = new Array<number>(64);
  for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) o[r * 8 + c] = t[c * 8 + r];
  return o;
}
/** The tables as DiffJPEG uses them, [u][v] row-major. */
export const DIFFJPEG_Y_TABLE: readonly number[] = transpose8(ANNEX_K_LUMA);
export const DIFFJPEG_C_TABLE: readonly number[] = transpose8(chromaTable());

export function qualityToFactor(q: number): number {
  return q < 50 ? 5000 / q / 100 : (200 - 2 * q) / 100;
}

/** cos((2x+1) u pi / 16), [x][u] row-major, and a(u) = 1/sqrt(2) for u = 0, else 1. */
const COS = Float64Array.from({ length: 64 }, (_, i) => Math.cos(((2 * Math.floor(i / 8) + 1) * (i % 8) * Math.PI) / 16));
const ALPHA = Float64Array.from({ length: 8 }, (_, u) => (u === 0 ? Math.SQRT1_2 : 1));

/** 0.25 a(u) a(v), [u][v]: the DCT's scale, folded in the order the formula multiplies it. */
const SCALE = Float64Array.from({ length: 64 }, (_, i) => 0.25 * ALPHA[Math.floor(i / 8)] * ALPHA[i % 8]);

/**
 * Compress-decompress one plane in place (h, w multiples of 8): per 8x8 block, shift by -128,
 * separable float64 DCT, quantize with `table` (64 entries, [u][v]), dequantize, inverse DCT,
 * shift back. float64 inside: the reference computes in float32, and a float64 port matches it
 * to ~3e-7 with no rounding flips on the fixtures (README).
 *
 * The 8-term sums are written out (each still adds its terms in index order from the first, so
 * the results are the loop's to the bit): this is the hottest loop of the degradation pipeline,
 * and V8 does not unroll the inner loops itself.
 */
function codePlane(plane: Float64Array, h: number, w: number, table: Float32Array, differentiable: boolean): void {
  const blk = new Float64Array(64);
  const tmp = new Float64Array(64);
  const C = COS;
  for (let by = 0; by < h; by += 8) {
    for (let bx = 0; bx < w; bx += 8) {
      // rows: tmp[x][v] = sum_y (plane[x][y] - 128) cos(y, v)
      for (let x = 0; x < 8; x++) {
        const o = (by + x) * w + bx;
        const b0 = plane[o] - 128, b1 = plane[o + 1] - 128, b2 = plane[o + 2] - 128, b3 = plane[o + 3] - 128;
        const b4 = plane[o + 4] - 128, b5 = plane[o + 5] - 128, b6 = plane[o + 6] - 128, b7 = plane[o + 7] - 128;
        for (let v = 0; v < 8; v++) {
          tmp[x * 8 + v] = b0 * C[v] + b1 * C[8 + v] + b2 * C[16 + v] + b3 * C[24 + v] + b4 * C[32 + v] + b5 * C[40 + v] + b6 * C[48 + v] + b7 * C[56 + v];
        }
      }
      // columns, scale, quantize, dequantize (with the IDCT's alpha folded in): blk[u][v]
      for (let v = 0; v < 8; v++) {
        const t0 = tmp[v], t1 = tmp[8 + v], t2 = tmp[16 + v], t3 = tmp[24 + v], t4 = tmp[32 + v], t5 = tmp[40 + v], t6 = tmp[48 + v], t7 = tmp[56 + v];
        for (let u = 0; u < 8; u++) {
          const acc = C[u] * t0 + C[8 + u] * t1 + C[16 + u] * t2 + C[24 + u] * t3 + C[32 + u] * t4 + C[40 + u] * t5 + C[48 + u] * t6 + C[56 + u] * t7;
          const q = table[u * 8 + v];
          const d = (SCALE[u * 8 + v] * acc) / q;
          let r = roundHalfEven(d);
          if (differentiable) r += (d - r) ** 3;
          blk[u * 8 + v] = r * q * ALPHA[u] * ALPHA[v];
        }
      }
      // inverse: tmp[x][v] = sum_u cos(x, u) blk[u][v]
      for (let v = 0; v < 8; v++) {
        const k0 = blk[v], k1 = blk[8 + v], k2 = blk[16 + v], k3 = blk[24 + v], k4 = blk[32 + v], k5 = blk[40 + v], k6 = blk[48 + v], k7 = blk[56 + v];
        for (let x = 0; x < 8; x++) {
          const c = x * 8;
          tmp[c + v] = C[c] * k0 + C[c + 1] * k1 + C[c + 2] * k2 + C[c + 3] * k3 + C[c + 4] * k4 + C[c + 5] * k5 + C[c + 6] * k6 + C[c + 7] * k7;
        }
      }
      // out[x][y] = 0.25 sum_v tmp[x][v] cos(y, v) + 128
      for (let x = 0; x < 8; x++) {
        const t0 = tmp[x * 8], t1 = tmp[x * 8 + 1], t2 = tmp[x * 8 + 2], t3 = tmp[x * 8 + 3];
        const t4 = tmp[x * 8 + 4], t5 = tmp[x * 8 + 5], t6 = tmp[x * 8 + 6], t7 = tmp[x * 8 + 7];
        const o = (by + x) * w + bx;
        for (let y = 0; y < 8; y++) {
          const c = y * 8;
          plane[o + y] = 0.25 * (t0 * C[c] + t1 * C[c + 1] + t2 * C[c + 2] + t3 * C[c + 3] + t4 * C[c + 4] + t5 * C[c + 5] + t6 * C[c + 6] + t7 * C[c + 7]) + 128;
        }
      }
    }
  }
}

/** DiffJPEG of one HWC RGB [0,1] image; returns a new float32 buffer. */
export function diffJpegImage(img: ArrayLike<number>, h: number, w: number, quality: number, differentiable = false): Float32Array {
  const ph = Math.ceil(h / 16) * 16;
  const pw = Math.ceil(w / 16) * 16;
  const fac = f32(qualityToFactor(quality));
  const yt = Float32Array.from(DIFFJPEG_Y_TABLE, (t) => f32(t * fac));
  const ct = Float32Array.from(DIFFJPEG_C_TABLE, (t) => f32(t * fac));
  const Y = new Float64Array(ph * pw);
  const cbFull = new Float64Array(ph * pw);
  const crFull = new Float64Array(ph * pw);
  // zero padding bottom/right: padded pixels are RGB 0 -> Y 0, Cb = Cr = 128
  cbFull.fill(128);
  crFull.fill(128);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = (y * w + x) * 3;
    const r = img[i] * 255;
    const g = img[i + 1] * 255;
    const b = img[i + 2] * 255;
    const o = y * pw + x;
    Y[o] = 0.299 * r + 0.587 * g + 0.114 * b;
    cbFull[o] = -0.168736 * r - 0.331264 * g + 0.5 * b + 128;
    crFull[o] = 0.5 * r - 0.418688 * g - 0.081312 * b + 128;
  }
  const hh = ph / 2;
  const hw = pw / 2;
  const cb = new Float64Array(hh * hw);
  const cr = new Float64Array(hh * hw);
  for (let y = 0; y < hh; y++) for (let x = 0; x < hw; x++) {
    const o = 2 * y * pw + 2 * x;
    cb[y * hw + x] = (cbFull[o] + cbFull[o + 1] + cbFull[o + pw] + cbFull[o + pw + 1]) / 4;
    cr[y * hw + x] = (crFull[o] + crFull[o + 1] + crFull[o + pw] + crFull[o + pw + 1]) / 4;
  }
  codePlane(Y, ph, pw, yt, differentiable);
  codePlane(cb, hh, hw, ct, differentiable);
  codePlane(cr, hh, hw, ct, differentiable);
  const out = new Float32Array(h * w * 3);
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v) / 255;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const yy = Y[y * pw + x];
    const c = (y >> 1) * hw + (x >> 1);
    const cbv = cb[c] - 128;
    const crv = cr[c] - 128;
    const i = (y * w + x) * 3;
    out[i] = clamp(yy + 1.402 * crv);
    out[i + 1] = clamp(yy - 0.344136 * cbv - 0.714136 * crv);
    out[i + 2] = clamp(yy + 1.772 * cbv);
  }
  return out;
}

