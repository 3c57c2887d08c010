/**
 * PSNR and SSIM as BasicSR's calculate_psnr / calculate_ssim compute them (input HWC, [0, 255]):
 * crop `crop_border` pixels on every side, optionally reduce to BasicSR's Y channel, then float64
 * math. SSIM: 11x11 Gaussian window (sigma 1.5, normalised like cv2.getGaussianKernel), statistics
 * on the VALID region only (5 px trimmed per side), mean of the map per channel, mean over channels.
 * The 2-D window is separable, so it runs as a row pass and a column pass.
 */
import { UserError } from '../../../framework/api.js';
import type { MetricImage } from '../../../framework/api.js';

export interface PsnrSsimOptions {
  cropBorder: number;
  /** Compare BasicSR's Y channel (of RGB input) instead of all channels. */
  testYChannel: boolean;
}

/** Planes (one Float64Array per channel, H*W) after crop and optional Y conversion. */
interface Planes {
  planes: Float64Array[];
  height: number;
  width: number;
}

/**
 * BasicSR's to_y_channel on RGB input, step for step in float32 as it does it:
 * f = float32(x)/255; Y = f_B*24.966 + f_G*128.553 + f_R*65.481 + 16 (float64); float32(Y/255) * 255 in float32.
 */
export function yChannel(img: MetricImage): Float64Array {
  const f = Math.fround;
  const n = img.height * img.width;
  const out = new Float64Array(n);
  const d = img.data;
  for (let i = 0; i < n; i++) {
    const r = f(f(d[3 * i]) / 255);
    const g = f(f(d[3 * i + 1]) / 255);
    const b = f(f(d[3 * i + 2]) / 255);
    const y = b * 24.966 + g * 128.553 + r * 65.481 + 16;
    out[i] = f(f(y / 255) * 255);
  }
  return out;
}

function toPlanes(img: MetricImage, o: PsnrSsimOptions): Planes {
  const c = o.cropBorder;
  const H = img.height - 2 * c;
  const W = img.width - 2 * c;
  const src: MetricImage = c === 0 ? img : crop(img, c);
  if (o.testYChannel && img.channels === 3) return { planes: [yChannel(src)], height: H, width: W };
  const planes: Float64Array[] = [];
  for (let ch = 0; ch < img.channels; ch++) {
    const p = new Float64Array(H * W);
    for (let i = 0; i < H * W; i++) p[i] = src.data[i * img.channels + ch];
    planes.push(p);
  }
  return { planes, height: H, width: W };
}

function crop(img: MetricImage, c: number): MetricImage {
  const H = img.height - 2 * c;
  const W = img.width - 2 * c;
  const C = img.channels;
  const out = new Float64Array(H * W * C);
  for (let y = 0; y < H; y++) {
    const from = ((y + c) * img.width + c) * C;
    for (let k = 0; k < W * C; k++) out[y * W * C + k] = img.data[from + k];
  }
  return { data: out, height: H, width: W, channels: C };
}

/** Check a pair before any number is computed; `sample` names it in the error. */
export function checkPair(a: MetricImage, b: MetricImage, o: PsnrSsimOptions, sample: string, minSide = 1): void {
  if (a.height !== b.height || a.width !== b.width || a.channels !== b.channels) {
    throw new UserError(`metric: sample "${sample}": images differ in size (${a.height}x${a.width}x${a.channels} vs ${b.height}x${b.width}x${b.channels})`);
  }
  for (const im of [a, b]) {
    if (im.data.length !== im.height * im.width * im.channels) {
      throw new UserError(`metric: sample "${sample}": image data length ${im.data.length} does not match ${im.height}x${im.width}x${im.channels}`);
    }
  }
  if (a.channels !== 1 && a.channels !== 3) throw new UserError(`metric: sample "${sample}": images must have 1 or 3 channels, not ${a.channels}`);
  const h = a.height - 2 * o.cropBorder;
  const w = a.width - 2 * o.cropBorder;
  if (h < minSide || w < minSide) {
    throw new UserError(`metric: sample "${sample}": ${a.height}x${a.width} is too small for crop_border ${o.cropBorder}${minSide > 1 ? ` and the ${minSide}x${minSide} SSIM window` : ''}`);
  }
}

/** BasicSR PSNR: 10 log10(255^2 / mse), mse over all pixels and channels in float64; Infinity for identical images. */
export function psnr(a: MetricImage, b: MetricImage, o: PsnrSsimOptions, sample = 'image'): number {
  checkPair(a, b, o, sample);
  const pa = toPlanes(a, o);
  const pb = toPlanes(b, o);
  let s = 0;
  let n = 0;
  for (let c = 0; c < pa.planes.length; c++) {
    const x = pa.planes[c];
    const y = pb.planes[c];
    for (let i = 0; i < x.length; i++) {
      const d = x[i] - y[i];
      s += d * d;
    }
    n += x.length;
  }
  const mse = s / n;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

const WIN = 11;
const HALF = 5;
/** BasicSR's SSIM stability constants, relative to the data range: C1 = (K1 L)^2, C2 = (K2 L)^2. */
export const SSIM_K1 = 0.01;
export const SSIM_K2 = 0.03;
/** cv2.getGaussianKernel(11, 1.5): exp(-(i-5)^2 / (2 sigma^2)), normalised by the sum, float64. */
export const SSIM_GAUSSIAN: Float64Array = (() => {
  const g = new Float64Array(WIN);
  let s = 0;
  for (let i = 0; i < WIN; i++) {
    g[i] = Math.exp(-((i - HALF) ** 2) / (2 * 1.5 * 1.5));
    s += g[i];
  }
  for (let i = 0; i < WIN; i++) g[i] /= s;
  return g;
})();

/** Mean SSIM of one plane pair over the valid region. */
export function ssimPlane(x: Float64Array, y: Float64Array, H: number, W: number): number {
  const C1 = (SSIM_K1 * 255) ** 2;
  const C2 = (SSIM_K2 * 255) ** 2;
  const g = SSIM_GAUSSIAN;
  const Wo = W - 2 * HALF;
  const Ho = H - 2 * HALF;
  // row pass: five filtered quantities (x, y, x^2, y^2, xy) on H x Wo
  const rx = new Float64Array(H * Wo);
  const ry = new Float64Array(H * Wo);
  const rxx = new Float64Array(H * Wo);
  const ryy = new Float64Array(H * Wo);
  const rxy = new Float64Array(H * Wo);
  for (let r = 0; r < H; r++) {
    const base = r * W;
    const ob = r * Wo;
    for (let c = 0; c < Wo; c++) {
      let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
      for (let k = 0; k < WIN; k++) {
        const w = g[k];
        const a = x[base + c + k];
        const b = y[base + c + k];
        sx += w * a;
        sy += w * b;
        sxx += w * a * a;
        syy += w * b * b;
        sxy += w * a * b;
      }
      rx[ob + c] = sx;
      ry[ob + c] = sy;
      rxx[ob + c] = sxx;
      ryy[ob + c] = syy;
      rxy[ob + c] = sxy;
    }
  }
  // column pass straight into the SSIM map's sum
  let total = 0;
  for (let r = 0; r < Ho; r++) {
    for (let c = 0; c < Wo; c++) {
      let mx = 0, my = 0, exx = 0, eyy = 0, exy = 0;
      for (let k = 0; k < WIN; k++) {
        const w = g[k];
        const i = (r + k) * Wo + c;
        mx += w * rx[i];
        my += w * ry[i];
        exx += w * rxx[i];
        eyy += w * ryy[i];
        exy += w * rxy[i];
      }
      const mx2 = mx * mx;
      const my2 = my * my;
      const mxy = mx * my;
      const s1 = exx - mx2;
      const s2 = eyy - my2;
      const s12 = exy - mxy;
      total += ((2 * mxy + C1) * (2 * s12 + C2)) / ((mx2 + my2 + C1) * (s1 + s2 + C2));
    }
  }
  return total / (Ho * Wo);
}

/** BasicSR SSIM: per-channel mean SSIM on the valid region, then the mean over channels. */
export function ssim(a: MetricImage, b: MetricImage, o: PsnrSsimOptions, sample = 'image'): number {
  checkPair(a, b, o, sample, WIN);
  const pa = toPlanes(a, o);
  const pb = toPlanes(b, o);
  let s = 0;
  for (let c = 0; c < pa.planes.length; c++) s += ssimPlane(pa.planes[c], pb.planes[c], pa.height, pa.width);
  return s / pa.planes.length;
}
