/**
 * Blur-kernel generators of the Real-ESRGAN degradation model, in float64 (kernels are tiny,
 * and float64 matches BasicSR's NumPy generators to ~1e-16). Kernels are row-major k*k arrays,
 * row = y (down), col = x (right); grid coordinates run -(k-1)/2 .. (k-1)/2.
 */
import type { Rng } from '../../../framework/api.js';

export interface Kernel {
  size: number;
  /** float64, row-major size*size, sums to 1 */
  data: Float64Array;
}

/** Inverse of the covariance U diag(sx^2, sy^2) U^T (isotropic: diag(sx^2, sx^2)). */
function inverseCovariance(sigX: number, sigY: number, theta: number, isotropic: boolean): [number, number, number] {
  if (isotropic) {
    const v = 1 / (sigX * sigX);
    return [v, 0, v];
  }
  const c = Math.cos(theta);
  const s = Math.sin(theta);
  const dx = sigX * sigX;
  const dy = sigY * sigY;
  // Sigma = [[a, b], [b, d]]
  const a = c * c * dx + s * s * dy;
  const b = c * s * dx - s * c * dy;
  const d = s * s * dx + c * c * dy;
  const det = a * d - b * b;
  return [d / det, -b / det, a / det];
}

function quadraticKernel(size: number, sigX: number, sigY: number, theta: number, isotropic: boolean, f: (q: number) => number): Kernel {
  if (size % 2 !== 1) throw new RangeError(`kernel size must be odd, got ${size}`);
  const [ia, ib, id] = inverseCovariance(sigX, sigY, theta, isotropic);
  const half = (size - 1) / 2;
  const data = new Float64Array(size * size);
  let sum = 0;
  for (let r = 0; r < size; r++) {
    const y = r - half;
    for (let c = 0; c < size; c++) {
      const x = c - half;
      const q = ia * x * x + 2 * ib * x * y + id * y * y;
      const v = f(q);
      data[r * size + c] = v;
      sum += v;
    }
  }
  for (let i = 0; i < data.length; i++) data[i] /= sum;
  return { size, data };
}

export function gaussianKernel(size: number, sigX: number, sigY: number, theta: number, isotropic: boolean): Kernel {
  return quadraticKernel(size, sigX, sigY, theta, isotropic, (q) => Math.exp(-0.5 * q));
}

export function generalizedGaussianKernel(size: number, sigX: number, sigY: number, theta: number, beta: number, isotropic: boolean): Kernel {
  return quadraticKernel(size, sigX, sigY, theta, isotropic, (q) => Math.exp(-0.5 * Math.pow(q, beta)));
}

export function plateauKernel(size: number, sigX: number, sigY: number, theta: number, beta: number, isotropic: boolean): Kernel {
  return quadraticKernel(size, sigX, sigY, theta, isotropic, (q) => 1 / (Math.pow(q, beta) + 1));
}

/**
 * Bessel J1 through its integral representation J1(x) = 1/(2 pi) \int cos(t - x sin t) dt over a
 * full period. The integrand is periodic and analytic, so the trapezoidal rule converges
 * super-exponentially once the node count exceeds ~x: machine precision without a table of
 * rational-approximation coefficients.
 */
export function besselJ1(x: number): number {
  const n = 2 * Math.ceil(Math.abs(x)) + 48;
  let s = 0;
  for (let i = 0; i < n; i++) {
    const t = (2 * Math.PI * i) / n;
    s += Math.cos(t - x * Math.sin(t));
  }
  return s / n;
}

/** Circular low-pass (2-D sinc) kernel; zero-padded to `padTo` when that is larger than `size`. */
export function sincKernel(cutoff: number, size: number, padTo = 0): Kernel {
  if (size % 2 !== 1) throw new RangeError(`kernel size must be odd, got ${size}`);
  const c = (size - 1) / 2;
  const data = new Float64Array(size * size);
  let sum = 0;
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const r = Math.hypot(i - c, j - c);
      const v = r === 0 ? (cutoff * cutoff) / (4 * Math.PI) : (cutoff * besselJ1(cutoff * r)) / (2 * Math.PI * r);
      data[i * size + j] = v;
      sum += v;
    }
  }
  for (let i = 0; i < data.length; i++) data[i] /= sum;
  const k: Kernel = { size, data };
  return padTo > size ? padKernel(k, padTo) : k;
}

/** Zero-pad a kernel symmetrically to `to` x `to`. */
export function padKernel(k: Kernel, to: number): Kernel {
  if (to <= k.size) return k;
  const p = (to - k.size) / 2;
  if (!Number.isInteger(p)) throw new RangeError(`cannot pad a ${k.size} kernel to ${to} symmetrically`);
  const data = new Float64Array(to * to);
  for (let r = 0; r < k.size; r++) for (let c = 0; c < k.size; c++) data[(r + p) * to + c + p] = k.data[r * k.size + c];
  return { size: to, data };
}

/** The identity ("pulse") kernel: filtering with it changes nothing. */
export function pulseKernel(size: number): Kernel {
  const data = new Float64Array(size * size);
  data[((size - 1) / 2) * size + (size - 1) / 2] = 1;
  return { size, data };
}

export type KernelType = 'iso' | 'aniso' | 'generalized_iso' | 'generalized_aniso' | 'plateau_iso' | 'plateau_aniso';
export const KERNEL_TYPES: readonly KernelType[] = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'];

/** Options of the random blur kernel (Real-ESRGAN's `kernel_list`, `kernel_prob`, ...). */
export interface RandomKernelOptions {
  kernelRange: readonly number[];
  kernelList: readonly KernelType[];
  kernelProb: readonly number[];
  sigmaX: readonly [number, number] | readonly number[];
  sigmaY: readonly [number, number] | readonly number[];
  rotation: readonly number[];
  betaGaussian: readonly number[];
  betaPlateau: readonly number[];
  sincProb: number;
  padTo: number;
}

/** Which kernel was drawn, with every parameter (recorded per sample). */
export type KernelParams =
  | { kind: 'sinc'; size: number; cutoff: number; padTo: number }
  | { kind: KernelType; size: number; sigX: number; sigY: number; theta: number; beta?: number; padTo: number };

function betaDraw(rng: Rng, range: readonly number[]): number {
  // BasicSR: half of the draws below 1, half above (range[0] < 1 < range[1])
  return rng.random() < 0.5 ? rng.uniform(range[0], 1) : rng.uniform(1, range[1]);
}

/** Draw the parameters of one random blur kernel (sinc with `sincProb`, else a mixed kernel). */
export function sampleKernelParams(rng: Rng, o: RandomKernelOptions): KernelParams {
  const size = rng.choice(o.kernelRange);
  if (rng.random() < o.sincProb) {
    const cutoff = size < 13 ? rng.uniform(Math.PI / 3, Math.PI) : rng.uniform(Math.PI / 5, Math.PI);
    return { kind: 'sinc', size, cutoff, padTo: o.padTo };
  }
  const kind = rng.choice(o.kernelList, o.kernelProb);
  const sigX = rng.uniform(o.sigmaX[0], o.sigmaX[1]);
  const iso = kind.endsWith('iso') && !kind.endsWith('aniso');
  const sigY = iso ? sigX : rng.uniform(o.sigmaY[0], o.sigmaY[1]);
  const theta = iso ? 0 : rng.uniform(o.rotation[0], o.rotation[1]);
  const p: KernelParams = { kind, size, sigX, sigY, theta, padTo: o.padTo };
  if (kind.startsWith('generalized')) p.beta = betaDraw(rng, o.betaGaussian);
  if (kind.startsWith('plateau')) p.beta = betaDraw(rng, o.betaPlateau);
  return p;
}

/** Build the kernel a parameter record describes (padded to `padTo`). */
export function makeKernel(p: KernelParams): Kernel {
  if (p.kind === 'sinc') return sincKernel(p.cutoff, p.size, p.padTo);
  const iso = !p.kind.endsWith('aniso');
  let k: Kernel;
  if (p.kind.startsWith('generalized')) k = generalizedGaussianKernel(p.size, p.sigX, p.sigY, p.theta, p.beta ?? 1, iso);
  else if (p.kind.startsWith('plateau')) k = plateauKernel(p.size, p.sigX, p.sigY, p.theta, p.beta ?? 1, iso);
  else k = gaussianKernel(p.size, p.sigX, p.sigY, p.theta, iso);
  return padKernel(k, p.padTo);
}
