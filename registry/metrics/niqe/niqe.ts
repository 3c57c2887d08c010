/**
 * NIQE (Mittal et al., "Making a completely blind image quality analyzer") as BasicSR's
 * calculate_niqe computes it: Y channel (BasicSR's float32 path), crop, round; on two scales
 * (full, then MATLAB-style bicubic antialiased 0.5x), mean-subtracted contrast-normalised
 * (MSCN) coefficients per 96x96 block give 18 AGGD features per scale; the distance between the
 * image's MVG fit and the pristine model (parameters from BasicSR, registry/metrics/niqe-params.ts)
 * is the score (lower = more natural). float32 rounding is replicated where BasicSR stores
 * float32 arrays (it starts from float32 images), so results track it closely.
 */
import { UserError, roundHalfEven } from '../../../framework/api.js';
import type { MetricImage } from '../../../framework/api.js';
import { yChannel } from '../common/psnr-ssim.js';
import { NIQE_COV_PRIS, NIQE_GAUSSIAN_WINDOW, NIQE_MU_PRIS } from './niqe-params.js';

const f32 = Math.fround;
const BLOCK = 96;

/** Lanczos approximation (g = 7, 9 terms), ~1e-15 relative for x > 0. */
const LANCZOS = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
export function gammaFn(x: number): number {
  if (x < 0.5) return Math.PI / (Math.sin(Math.PI * x) * gammaFn(1 - x));
  const z = x - 1;
  let a = LANCZOS[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (z + i);
  return Math.sqrt(2 * Math.PI) * Math.pow(t, z + 0.5) * Math.exp(-t) * a;
}

/** The AGGD shape grid BasicSR searches: gam = arange(0.2, 10.001, 0.001) and r(gam). */
let grid: { gam: Float64Array; r: Float64Array } | undefined;
function aggdGrid(): { gam: Float64Array; r: Float64Array } {
  if (grid) return grid;
  const n = Math.ceil((10.001 - 0.2) / 0.001);
  const gam = new Float64Array(n);
  const r = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    gam[k] = 0.2 + k * 0.001;
    const inv = 1 / gam[k];
    r[k] = gammaFn(2 * inv) ** 2 / (gammaFn(inv) * gammaFn(3 * inv));
  }
  return (grid = { gam, r });
}

function aggdParams(v: Float64Array): [alpha: number, betaL: number, betaR: number] {
  let sl = 0, nl = 0, sr = 0, nr = 0, sabs = 0, s2 = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    const x2 = x * x;
    if (x < 0) {
      sl += x2;
      nl++;
    } else if (x > 0) {
      sr += x2;
      nr++;
    }
    sabs += Math.abs(x);
    s2 += x2;
  }
  const leftStd = Math.sqrt(sl / nl);
  const rightStd = Math.sqrt(sr / nr);
  const gh = leftStd / rightStd;
  const rhat = (sabs / v.length) ** 2 / (s2 / v.length);
  const rhatnorm = (rhat * (gh ** 3 + 1) * (gh + 1)) / (gh ** 2 + 1) ** 2;
  const { gam, r } = aggdGrid();
  let best = 0;
  let bestD = Infinity;
  for (let k = 0; k < gam.length; k++) {
    const d = (r[k] - rhatnorm) ** 2;
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  const alpha = gam[best];
  const c = Math.sqrt(gammaFn(1 / alpha) / gammaFn(3 / alpha));
  return [alpha, leftStd * c, rightStd * c];
}

/** 18 features of one MSCN block (h x w): AGGD of the block and of its products with 4 shifted copies (np.roll). */
function blockFeatures(b: Float64Array, h: number, w: number): number[] {
  const [a0, l0, r0] = aggdParams(b);
  const feat = [a0, (l0 + r0) / 2];
  const prod = new Float64Array(h * w);
  for (const [dy, dx] of [[0, 1], [1, 0], [1, 1], [1, -1]]) {
    for (let y = 0; y < h; y++) {
      const sy = (y - dy + h) % h;
      for (let x = 0; x < w; x++) prod[y * w + x] = f32(b[y * w + x] * b[sy * w + ((x - dx + w) % w)]);
    }
    const [a, l, r] = aggdParams(prod);
    feat.push(a, (r - l) * (gammaFn(2 / a) / gammaFn(1 / a)), l, r);
  }
  return feat;
}

/** scipy.ndimage.convolve(img, window 7x7, mode='nearest'), float64 sums cast to float32 like its float32 output. */
function convolveNearest(img: Float64Array, h: number, w: number): Float64Array {
  const win = NIQE_GAUSSIAN_WINDOW;
  const out = new Float64Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let ky = 0; ky < 7; ky++) {
        const yy = Math.min(h - 1, Math.max(0, y + 3 - ky));
        for (let kx = 0; kx < 7; kx++) {
          const xx = Math.min(w - 1, Math.max(0, x + 3 - kx));
          s += win[ky * 7 + kx] * img[yy * w + xx];
        }
      }
      out[y * w + x] = f32(s);
    }
  }
  return out;
}

/** MATLAB bicubic kernel. */
function cubic(x: number): number {
  const a = Math.abs(x);
  if (a <= 1) return 1.5 * a ** 3 - 2.5 * a * a + 1;
  if (a <= 2) return -0.5 * a ** 3 + 2.5 * a * a - 4 * a + 2;
  return 0;
}

/** BasicSR/MATLAB imresize weights for scale 0.5 with antialiasing: per output index, first input index and weights (symmetric padding). */
function resizeWeights(inLen: number, outLen: number, scale: number): { first: Int32Array; weights: Float64Array[]; padS: number } {
  const kw = 4 / scale;
  const p = Math.ceil(kw) + 2;
  let idx: number[][] = [];
  let wts: number[][] = [];
  for (let i = 0; i < outLen; i++) {
    const u = (i + 1) / scale + 0.5 * (1 - 1 / scale);
    const left = Math.floor(u - kw / 2);
    const ix: number[] = [];
    const wx: number[] = [];
    for (let j = 0; j < p; j++) {
      ix.push(left + j);
      wx.push(scale * cubic((u - (left + j)) * scale));
    }
    const s = wx.reduce((a, b) => a + b, 0);
    idx.push(ix);
    wts.push(wx.map((v) => v / s));
  }
  // drop a first/last column that is zero for any output (as BasicSR does)
  if (wts.some((r) => r[0] === 0)) {
    idx = idx.map((r) => r.slice(1));
    wts = wts.map((r) => r.slice(1));
  }
  const last = wts[0].length - 1;
  if (wts.some((r) => r[last] === 0)) {
    idx = idx.map((r) => r.slice(0, last));
    wts = wts.map((r) => r.slice(0, last));
  }
  const minIdx = Math.min(...idx.map((r) => r[0]));
  const padS = -minIdx + 1;
  return { first: Int32Array.from(idx.map((r) => r[0] + padS - 1)), weights: wts.map((r) => Float64Array.from(r)), padS };
}

/** Value at padded position q of a line of length n padded by `padS` mirrored samples (edge included). */
function mirror(q: number, padS: number, n: number): number {
  const t = q - padS;
  if (t < 0) return -t - 1;
  if (t >= n) return 2 * n - t - 1;
  return t;
}

/** BasicSR imresize(img, 0.5, antialiasing=True) on one plane, float32 storage between the passes. */
function halfResize(img: Float64Array, h: number, w: number): { data: Float64Array; h: number; w: number } {
  const oh = Math.ceil(h * 0.5);
  const ow = Math.ceil(w * 0.5);
  const wh = resizeWeights(h, oh, 0.5);
  const ww = resizeWeights(w, ow, 0.5);
  const mid = new Float64Array(oh * w);
  for (let i = 0; i < oh; i++) {
    const wt = wh.weights[i];
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let k = 0; k < wt.length; k++) s += wt[k] * img[mirror(wh.first[i] + k, wh.padS, h) * w + x];
      mid[i * w + x] = f32(s);
    }
  }
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    for (let j = 0; j < ow; j++) {
      const wt = ww.weights[j];
      let s = 0;
      for (let k = 0; k < wt.length; k++) s += wt[k] * mid[y * w + mirror(ww.first[j] + k, ww.padS, w)];
      out[y * ow + j] = f32(s);
    }
  }
  return { data: out, h: oh, w: ow };
}

/** Symmetric eigen-decomposition by cyclic Jacobi rotations (n small). Returns eigenvalues and column eigenvectors. */
function symmetricEigen(a0: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = a0.slice();
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i * n + j] ** 2;
    if (off < 1e-300) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i];
  return { values, vectors: v };
}

/** NIQE of a gray/Y plane already cropped and rounded (BasicSR's niqe()). */
export function niqeOfPlane(plane: Float64Array, h0: number, w0: number, sample = 'image'): number {
  const nbh = Math.floor(h0 / BLOCK);
  const nbw = Math.floor(w0 / BLOCK);
  if (nbh < 1 || nbw < 1 || nbh * nbw < 2) {
    throw new UserError(`metric/niqe: sample "${sample}": ${h0}x${w0} (after crop) holds fewer than two ${BLOCK}x${BLOCK} blocks; NIQE needs at least 96x192`);
  }
  let h = nbh * BLOCK;
  let w = nbw * BLOCK;
  let img = new Float64Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) img[y * w + x] = plane[y * w0 + x];
  const rows: number[][] = Array.from({ length: nbh * nbw }, () => []);
  for (const scale of [1, 2]) {
    const mu = convolveNearest(img, h, w);
    const sq = img.map((v) => f32(v * v));
    const e2 = convolveNearest(sq, h, w);
    const norm = new Float64Array(h * w);
    for (let i = 0; i < norm.length; i++) {
      const sigma = f32(Math.sqrt(f32(Math.abs(f32(e2[i] - f32(mu[i] * mu[i]))))));
      norm[i] = f32(f32(img[i] - mu[i]) / f32(sigma + 1));
    }
    const bs = BLOCK / scale;
    let r = 0;
    for (let bw = 0; bw < nbw; bw++) {
      for (let bh = 0; bh < nbh; bh++) {
        const block = new Float64Array(bs * bs);
        for (let y = 0; y < bs; y++) for (let x = 0; x < bs; x++) block[y * bs + x] = norm[(bh * bs + y) * w + bw * bs + x];
        rows[r++].push(...blockFeatures(block, bs, bs));
      }
    }
    if (scale === 1) {
      const small = halfResize(img.map((v) => f32(v / 255)), h, w);
      img = small.data.map((v) => f32(v * 255));
      h = small.h;
      w = small.w;
    }
  }
  const d = NIQE_MU_PRIS.length;
  // mean over blocks ignoring NaN per feature; covariance over blocks without any NaN
  const mu = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    let s = 0;
    let k = 0;
    for (const row of rows) {
      if (!Number.isNaN(row[j])) {
        s += row[j];
        k++;
      }
    }
    mu[j] = s / k;
  }
  const clean = rows.filter((row) => row.every((v) => !Number.isNaN(v)));
  if (clean.length < 2) throw new UserError(`metric/niqe: sample "${sample}": fewer than two blocks with finite features (flat image?)`);
  const cm = new Float64Array(d);
  for (let j = 0; j < d; j++) cm[j] = clean.reduce((a, row) => a + row[j], 0) / clean.length;
  const m = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      let s = 0;
      for (const row of clean) s += (row[i] - cm[i]) * (row[j] - cm[j]);
      const c = s / (clean.length - 1);
      m[i * d + j] = m[j * d + i] = (NIQE_COV_PRIS[i * d + j] + c) / 2;
    }
  }
  // pseudo-inverse (numpy pinv: singular values below 1e-15 * max are dropped) via the eigen-decomposition of the symmetric matrix
  const { values, vectors } = symmetricEigen(m, d);
  const cutoff = 1e-15 * Math.max(...values.map(Math.abs));
  const diff = Float64Array.from(NIQE_MU_PRIS, (v, j) => v - mu[j]);
  let q = 0;
  for (let k = 0; k < d; k++) {
    if (Math.abs(values[k]) <= cutoff) continue;
    let proj = 0;
    for (let i = 0; i < d; i++) proj += vectors[i * d + k] * diff[i];
    q += (proj * proj) / values[k];
  }
  return Math.sqrt(q);
}

/** BasicSR calculate_niqe(img, crop_border, input_order='HWC', convert_to='y') on an RGB (or gray) image in [0, 255]. */
export function niqe(img: MetricImage, cropBorder: number, sample = 'image'): number {
  if (img.data.length !== img.height * img.width * img.channels) {
    throw new UserError(`metric/niqe: sample "${sample}": image data length ${img.data.length} does not match ${img.height}x${img.width}x${img.channels}`);
  }
  let plane: Float64Array;
  if (img.channels === 3) plane = yChannel(img);
  else if (img.channels === 1) plane = Float64Array.from(img.data, (v) => f32(v));
  else throw new UserError(`metric/niqe: sample "${sample}": images must have 1 or 3 channels, not ${img.channels}`);
  const h = img.height - 2 * cropBorder;
  const w = img.width - 2 * cropBorder;
  const out = new Float64Array(Math.max(0, h * w));
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = roundHalfEven(plane[(y + cropBorder) * img.width + x + cropBorder]);
  return niqeOfPlane(out, h, w, sample);
}
