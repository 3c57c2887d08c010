/**
 * Gaussian and Poisson noise with BasicSR semantics. The random draws come from an injectable
 * `NoiseSampler` (default: the sample's seeded Rng), so the deterministic part can be fed
 * recorded draws and checked against the reference exactly. Images are one sample's HWC
 * float32 buffers; every step is rounded to float32 as the reference computes it.
 */
// host.js, not api.js: the noise helper thread loads this module and needs no tfjs
import type { Rng } from '../../../framework/host.js';
import { roundHalfEven } from '../../../framework/host.js';

const f32 = Math.fround;

export interface NoiseSampler {
  /** `n` standard-normal draws (float32). */
  normal(n: number): Float32Array;
  /** One Poisson draw per rate. */
  poisson(lambda: Float32Array): Float32Array;
}

export function rngSampler(rng: Rng): NoiseSampler {
  return {
    normal: (n) => rng.fillNormal(new Float32Array(n)) as Float32Array,
    poisson: (lam) => poissonDraws(rng, lam),
  };
}

const LOG_FACT: number[] = [0];
function logFactorial(k: number): number {
  if (k < 1024) {
    while (LOG_FACT.length <= k) LOG_FACT.push(LOG_FACT[LOG_FACT.length - 1] + Math.log(LOG_FACT.length));
    return LOG_FACT[k];
  }
  const x = k + 1; // Stirling series, error < 1e-12 here
  return (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) + 1 / (12 * x) - 1 / (360 * x ** 3);
}

/**
 * A float32 -> slot table for the per-rate constants: open addressing on the rate's bits.
 * A noise image has at most 256 distinct rates but a million pixels, and a JS Map keyed by
 * doubles cost a third of the draw time.
 */
class RateSlots {
  private readonly keys = new Uint32Array(4096);
  private readonly used = new Uint8Array(4096);
  count = 0;
  /** The slot of `bits`, and whether it was new (the caller fills its constants then). */
  slot(bits: number): number {
    let h = Math.imul(bits, 0x9e3779b1) >>> 20;
    for (;;) {
      if (!this.used[h]) {
        if (this.count >= 2048) return -1; // more distinct rates than a noise image has: no caching
        this.used[h] = 1;
        this.keys[h] = bits;
        this.count++;
        return h | 0x10000;
      }
      if (this.keys[h] === bits) return h;
      h = (h + 1) & 4095;
    }
  }
}

/**
 * One Poisson draw per rate from `rng`: inversion below 10, Hormann's PTRS transformed rejection
 * above. A noise image has at most 256 distinct rates (the k/255 grid times vals), so the
 * per-rate constants, log(invalpha) included, are computed once per rate instead of once per
 * pixel. The uniforms come in blocks from a copy of the stream (`fillUniform`: the same values
 * as `random()`, without a call per draw), and `rng` then skips exactly the ones used.
 */
export function poissonDraws(rng: Rng, lam: Float32Array): Float32Array {
  const out = new Float32Array(lam.length);
  const bits = new Uint32Array(lam.buffer, lam.byteOffset, lam.length);
  const slots = new RateSlots();
  // per slot (4096: scratch): exp(-l) (small rates) or PTRS's b, a, log(invalpha), vr and log(l)
  const cE = new Float64Array(4097);
  const cB = new Float64Array(4097);
  const cA = new Float64Array(4097);
  const cLogInv = new Float64Array(4097);
  const cVr = new Float64Array(4097);
  const cLog = new Float64Array(4097);
  const fill = (h: number, l: number) => {
    if (l < 10) {
      cE[h] = Math.exp(-l);
      return;
    }
    const b = 0.931 + 2.53 * Math.sqrt(l);
    cB[h] = b;
    cA[h] = -0.059 + 0.02483 * b;
    cLogInv[h] = Math.log(1.1239 + 1.1328 / (b - 3.4));
    cVr[h] = 0.9277 - 3.6224 / (b - 2);
    cLog[h] = Math.log(l);
  };
  const stream = rng.copy();
  const block = new Float64Array(4096);
  let pos = block.length;
  let produced = 0;
  for (let i = 0; i < lam.length; i++) {
    const l = lam[i];
    if (!(l > 0)) {
      if (l < 0 || Number.isNaN(l)) throw new RangeError(`poisson rate must be >= 0, got ${l}`);
      out[i] = 0;
      continue;
    }
    let h = slots.slot(bits[i]);
    if (h < 0) {
      h = 4096; // table full: recompute into the scratch slot every time
      fill(h, l);
    } else if (h & 0x10000) {
      h &= 0xffff;
      fill(h, l);
    }
    if (l < 10) {
      let k = 0;
      let p = cE[h];
      let acc = p;
      if (pos === block.length) {
        stream.fillUniform(block);
        pos = 0;
        produced += block.length;
      }
      const u = block[pos++];
      while (u > acc && k < 1000) {
        k++;
        p *= l / k;
        acc += p;
      }
      out[i] = k;
      continue;
    }
    const a = cA[h];
    const b = cB[h];
    for (;;) {
      if (pos >= block.length - 1) {
        // keep a pair in one block: move a leftover uniform to the front
        const left = block.length - pos;
        if (left === 1) block[0] = block[pos];
        stream.fillUniform(block.subarray(left));
        pos = 0;
        produced += block.length - left;
      }
      const u = block[pos++] - 0.5;
      const v = block[pos++];
      const us = 0.5 - Math.abs(u);
      const k = Math.floor(((2 * a) / us + b) * u + l + 0.43);
      if (us >= 0.07 && v <= cVr[h]) {
        out[i] = k;
        break;
      }
      if (k < 0 || (us < 0.013 && v > us)) continue;
      if (Math.log(v) + cLogInv[h] - Math.log(a / (us * us) + b) <= -l + k * cLog[h] - logFactorial(k)) {
        out[i] = k;
        break;
      }
    }
  }
  // the uniforms used: all the copy produced but the block's unread rest; each is two outputs
  rng.advance(2 * (produced - (block.length - pos)));
  return out;
}

/** Gray conventions: torchvision rgb_to_grayscale (RGB input) or cv2 BGR2GRAY applied to the stored order. */
export type GrayWeights = 'torch' | 'cv2';

function grayOf(img: Float32Array, hw: number, c: number, weights: GrayWeights): Float32Array {
  const g = new Float32Array(hw);
  if (c === 1) {
    g.set(img);
    return g;
  }
  const [w0, w1, w2] = weights === 'torch' ? [f32(0.2989), f32(0.587), f32(0.114)] : [f32(0.114), f32(0.587), f32(0.299)];
  for (let i = 0; i < hw; i++) g[i] = f32(f32(f32(w0 * img[i * c]) + f32(w1 * img[i * c + 1])) + f32(w2 * img[i * c + 2]));
  return g;
}

/** Gaussian noise of one sample: `float32(z) * sigma / 255`; gray noise is one HxW draw copied to every channel. */
export function gaussianNoise(hw: number, c: number, sigma: number, gray: boolean, draws: Float32Array): Float32Array {
  const noise = new Float32Array(hw * c);
  if (gray) {
    if (draws.length !== hw) throw new RangeError(`gaussian gray noise needs ${hw} draws, got ${draws.length}`);
    for (let i = 0; i < hw; i++) {
      const v = f32(f32(draws[i] * sigma) / 255);
      for (let ch = 0; ch < c; ch++) noise[i * c + ch] = v;
    }
  } else {
    if (draws.length !== hw * c) throw new RangeError(`gaussian noise needs ${hw * c} draws, got ${draws.length}`);
    for (let i = 0; i < noise.length; i++) noise[i] = f32(f32(draws[i] * sigma) / 255);
  }
  return noise;
}

/** The 8-bit grid image, the count of distinct grid values, and vals = 2^ceil(log2(count)). */
export function quantizeForPoisson(img: Float32Array): { rounded: Float32Array; count: number; vals: number } {
  const rounded = new Float32Array(img.length);
  const seen = new Uint8Array(256);
  let count = 0;
  for (let i = 0; i < img.length; i++) {
    const k = Math.min(Math.max(roundHalfEven(f32(img[i] * 255)), 0), 255);
    rounded[i] = f32(k / 255);
    if (!seen[k]) {
      seen[k] = 1;
      count++;
    }
  }
  return { rounded, count, vals: 2 ** Math.ceil(Math.log2(count)) };
}

function poissonOn(x: Float32Array, draw: (lam: Float32Array) => Float32Array): Float32Array {
  const { rounded, vals } = quantizeForPoisson(x);
  const lam = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) lam[i] = f32(rounded[i] * vals);
  const d = draw(lam);
  const noise = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) noise[i] = f32(f32(d[i] / vals) - rounded[i]);
  return noise;
}

/**
 * Poisson noise of one sample (before scaling): the image is rounded to the k/255 grid, the
 * rate is `rounded * vals`, noise = draw/vals - rounded. Gray: computed on the gray image and
 * copied to every channel. Returns noise * scale (to be added to the ORIGINAL image).
 */
export function poissonNoise(
  img: Float32Array, hw: number, c: number, scale: number, gray: boolean,
  draw: (lam: Float32Array) => Float32Array, grayWeights: GrayWeights = 'torch',
): Float32Array {
  const out = new Float32Array(hw * c);
  if (gray) {
    const g = poissonOn(grayOf(img, hw, c, grayWeights), draw);
    for (let i = 0; i < hw; i++) {
      const v = f32(g[i] * scale);
      for (let ch = 0; ch < c; ch++) out[i * c + ch] = v;
    }
    return out;
  }
  const n = poissonOn(img, draw);
  for (let i = 0; i < n.length; i++) out[i] = f32(n[i] * scale);
  return out;
}

/** BasicSR's clip / round of a noisy value: `clip(round(x*255), 0, 255)/255` when both. */
function finish(v: number, clip: boolean, rounds: boolean): number {
  if (rounds) {
    let k = roundHalfEven(f32(v * 255));
    if (clip) k = Math.min(Math.max(k, 0), 255);
    return f32(k / 255);
  }
  return clip ? Math.min(Math.max(v, 0), 1) : v;
}

/** out = img + noise, then BasicSR's clip / round: `clip(round(x*255), 0, 255)/255` when both. */
export function addNoise(img: Float32Array, noise: Float32Array, clip: boolean, rounds: boolean): Float32Array {
  const out = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = finish(f32(img[i] + noise[i]), clip, rounds);
  return out;
}

/**
 * `addNoise(img, gaussianNoise(hw, c, sigma, gray, draws), clip, rounds)` in one pass, without
 * the noise image: the same float32 steps, so the same values. `draws` has one draw per value
 * (colour) or per pixel (gray).
 */
export function addGaussianNoise(img: Float32Array, c: number, sigma: number, gray: boolean, clip: boolean, rounds: boolean, draws: Float32Array): Float32Array {
  const per = gray ? c : 1;
  if (draws.length * per !== img.length) throw new RangeError(`gaussian noise needs ${img.length / per} draws, got ${draws.length}`);
  const out = new Float32Array(img.length);
  for (let j = 0, i = 0; j < draws.length; j++) {
    const noise = f32(f32(draws[j] * sigma) / 255);
    for (let k = 0; k < per; k++, i++) {
      out[i] = finish(f32(img[i] + noise), clip, rounds);
    }
  }
  return out;
}

/**
 * `addNoise(img, poissonNoise(img, hw, c, scale, gray, draw, grayWeights), clip, rounds)` in
 * three passes instead of seven, without the intermediate images: the grid level of every
 * value is kept as a byte, the rounded values come from a 256-entry table, and the noise is
 * added as it is computed. The same float32 steps, so the same values.
 */
export function addPoissonNoise(
  img: Float32Array, hw: number, c: number, scale: number, gray: boolean, clip: boolean, rounds: boolean,
  draw: (lam: Float32Array) => Float32Array, grayWeights: GrayWeights = 'torch',
): Float32Array {
  const src = gray ? grayOf(img, hw, c, grayWeights) : img;
  const per = gray ? c : 1;
  const grid = new Float32Array(256);
  for (let k = 0; k < 256; k++) grid[k] = f32(k / 255);
  const level = new Uint8Array(src.length);
  const seen = new Uint8Array(256);
  let count = 0;
  for (let i = 0; i < src.length; i++) {
    const k = Math.min(Math.max(roundHalfEven(f32(src[i] * 255)), 0), 255);
    level[i] = k;
    if (!seen[k]) {
      seen[k] = 1;
      count++;
    }
  }
  const vals = 2 ** Math.ceil(Math.log2(count));
  const lam = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) lam[i] = f32(grid[level[i]] * vals);
  const d = draw(lam);
  const out = new Float32Array(img.length);
  for (let j = 0, i = 0; j < src.length; j++) {
    const noise = f32(f32(f32(d[j] / vals) - grid[level[j]]) * scale);
    for (let k = 0; k < per; k++, i++) {
      out[i] = finish(f32(img[i] + noise), clip, rounds);
    }
  }
  return out;
}

export { grayOf };
