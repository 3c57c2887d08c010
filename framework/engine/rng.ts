/**
 * Deterministic random numbers for everything stochastic in a run (initialisation, data
 * order, augmentation, degradation draws). One master seed; independent streams are
 * *derived* from (seed, ...keys) by hashing, never by consuming a shared stream, so a
 * sample's draws depend only on (seed, "degradation", sampleIndex) -- the same in every
 * worker, on every run, whatever order samples are processed in.
 *
 * Generator: xoshiro128** (32-bit arithmetic, fast in JS); seeding: murmur3-style mixing
 * of the key sequence.
 */
export type RngKey = string | number;

export interface RngState {
  s: [number, number, number, number];
  spare: number | null;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash a key sequence into four 32-bit words (lane i uses a different start value). */
function hashKeys(keys: readonly RngKey[]): [number, number, number, number] {
  const out: number[] = [];
  for (let lane = 0; lane < 4; lane++) {
    let h = fmix32(0x9e3779b9 ^ Math.imul(lane + 1, 0x6a09e667));
    for (const k of keys) {
      const s = typeof k === 'number' ? `n:${k}` : `s:${k}`;
      for (let i = 0; i < s.length; i++) {
        h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
        h = (h << 13) | (h >>> 19);
      }
      h = fmix32(h ^ 0x2f);
    }
    out.push(fmix32(h + lane));
  }
  if (!out.some((x) => x !== 0)) out[0] = 1;
  return out as [number, number, number, number];
}

export class Rng {
  /** xoshiro128** state s0..s3 (as int32) */
  private readonly st: Int32Array;
  private spare: number | null = null;
  /** The keys this stream was derived from (for fork). */
  readonly keys: readonly RngKey[];

  private constructor(keys: readonly RngKey[], state?: RngState) {
    this.keys = keys;
    this.st = Int32Array.from(state?.s ?? hashKeys(keys));
    this.spare = state?.spare ?? null;
  }

  /** A stream determined by the master seed and any number of keys. */
  static derive(seed: number, ...keys: RngKey[]): Rng {
    return new Rng([seed, ...keys]);
  }

  /** An independent child stream (depends on this stream's keys, not on how much was drawn). */
  fork(...keys: RngKey[]): Rng {
    return new Rng([...this.keys, ...keys]);
  }

  /** An independent stream at the same point of this one's sequence (same keys and state). */
  copy(): Rng {
    return new Rng(this.keys, this.getState());
  }

  /** Snapshot for checkpoints; `Rng.restore` continues the exact sequence. */
  getState(): RngState {
    const [s0, s1, s2, s3] = this.st as unknown as [number, number, number, number];
    return { s: [s0, s1, s2, s3], spare: this.spare };
  }

  /** Continue from a snapshot in place (a helper thread drew this stream's next values). */
  setState(state: RngState): void {
    this.st.set(state.s);
    this.spare = state.spare;
  }

  static restore(keys: readonly RngKey[], state: RngState): Rng {
    return new Rng(keys, state);
  }

  /** Next 32-bit unsigned integer (xoshiro128**). */
  nextU32(): number {
    return xoshiroNext(this.st);
  }

  /** Uniform in [0, 1) with 53 random bits. */
  random(): number {
    return uniform53(this.st);
  }

  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.random();
  }

  /** Integer in [lo, hi] inclusive (unbiased). */
  int(lo: number, hi: number): number {
    const span = hi - lo + 1;
    if (!(span >= 1) || span > 2 ** 32) throw new RangeError(`Rng.int: bad range [${lo}, ${hi}]`);
    const limit = Math.floor(2 ** 32 / span) * span;
    let x: number;
    do x = this.nextU32();
    while (x >= limit);
    return lo + (x % span);
  }

  bernoulli(p: number): boolean {
    return this.random() < p;
  }

  /** Standard normal (Box-Muller, pairs cached). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** An element of `items`, optionally with (unnormalised) weights. */
  choice<T>(items: readonly T[], weights?: readonly number[]): T {
    if (items.length === 0) throw new RangeError('Rng.choice: empty list');
    if (!weights) return items[this.int(0, items.length - 1)];
    if (weights.length !== items.length) throw new RangeError('Rng.choice: weights and items differ in length');
    const total = weights.reduce((a, b) => a + b, 0);
    let r = this.random() * total;
    for (let i = 0; i < items.length; i++) {
      r -= weights[i];
      if (r < 0) return items[i];
    }
    return items[items.length - 1];
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [arr[i], arr[j]] = [arr[j], arr[i]];
    }
    return arr;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }

  /**
   * `out.length` draws of `normal(mean, std)`: the same values, spare included, as calling
   * `normal` in a loop, drawing straight from the state array (`uniform53`) without a method
   * call per draw. Noise images need a million draws. (Holding the state in locals, as
   * fillUniform does, measured no faster here: the transcendental functions dominate.)
   */
  fillNormal(out: Float32Array | Float64Array, mean = 0, std = 1): typeof out {
    const n = out.length;
    let i = 0;
    if (n > 0 && this.spare !== null) {
      out[i++] = mean + std * this.spare;
      this.spare = null;
    }
    const st = this.st;
    while (i < n) {
      let u = 0;
      while (u === 0) u = uniform53(st);
      const v = uniform53(st);
      const r = Math.sqrt(-2 * Math.log(u));
      out[i++] = mean + std * r * Math.cos(2 * Math.PI * v);
      const z = r * Math.sin(2 * Math.PI * v);
      if (i < n) out[i++] = mean + std * z;
      else this.spare = z;
    }
    return out;
  }

  /**
   * `out.length` draws of `uniform(lo, hi)`: the same values as calling it in a loop, with the
   * xoshiro state in locals for the whole fill: `uniform53` and `xoshiroNext` written out
   * inline, because the state array's reads and writes per draw made a loop over `uniform53`
   * 1.6x slower (4 vs 6.5 ms per 786k draws; the criterion's point sampling draws ~2e5 per step).
   */
  fillUniform(out: Float32Array | Float64Array, lo = 0, hi = 1): typeof out {
    const st = this.st;
    let s0 = st[0] as number, s1 = st[1] as number, s2 = st[2] as number, s3 = st[3] as number;
    const span = hi - lo;
    for (let i = 0; i < out.length; i++) {
      // uniform53: two xoshiro128** steps, the first's top 27 bits and the second's top 26
      let r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
      let t = s1 << 9;
      s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11);
      const a = r >>> 5;
      r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
      t = s1 << 9;
      s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11);
      out[i] = lo + span * ((a * 67108864 + (r >>> 6)) / 9007199254740992);
    }
    st[0] = s0; st[1] = s1; st[2] = s2; st[3] = s3;
    return out;
  }

  /**
   * Skip `outputs` xoshiro128** outputs (`nextU32` draws) without computing them: a helper
   * thread continues a stream from where another thread's share of the draws will end
   * (`random`/`uniform` take 2 outputs, a Box-Muller pair of `normal` draws 4).
   */
  advance(outputs: number): this {
    if (!(outputs >= 0) || !Number.isInteger(outputs)) throw new RangeError(`Rng.advance: outputs must be a whole number >= 0, got ${outputs}`);
    const st = this.st;
    let s0 = st[0] as number, s1 = st[1] as number, s2 = st[2] as number, s3 = st[3] as number;
    for (let i = 0; i < outputs; i++) {
      const t = s1 << 9;
      s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11);
    }
    st[0] = s0; st[1] = s1; st[2] = s2; st[3] = s3;
    return this;
  }

  /**
   * Poisson(lambda) variate. Inversion by sequential search for small lambda; Hormann's
   * PTRS transformed rejection for lambda >= 10 (exact, O(1) expected time), which the
   * Poisson-noise degradation needs for lambda up to ~255 * 256.
   */
  poisson(lambda: number): number {
    if (!(lambda >= 0)) throw new RangeError(`Rng.poisson: lambda must be >= 0, got ${lambda}`);
    if (lambda === 0) return 0;
    if (lambda < 10) {
      const l = Math.exp(-lambda);
      let k = 0;
      let p = l;
      let s = p;
      const u = this.random();
      while (u > s && k < 1000) {
        k++;
        p *= lambda / k;
        s += p;
      }
      return k;
    }
    const slam = Math.sqrt(lambda);
    const loglam = Math.log(lambda);
    const b = 0.931 + 2.53 * slam;
    const a = -0.059 + 0.02483 * b;
    const invalpha = 1.1239 + 1.1328 / (b - 3.4);
    const vr = 0.9277 - 3.6224 / (b - 2);
    while (true) {
      const u = this.random() - 0.5;
      const v = this.random();
      const us = 0.5 - Math.abs(u);
      const k = Math.floor(((2 * a) / us + b) * u + lambda + 0.43);
      if (us >= 0.07 && v <= vr) return k;
      if (k < 0 || (us < 0.013 && v > us)) continue;
      if (Math.log(v) + Math.log(invalpha) - Math.log(a / (us * us) + b) <= -lambda + k * loglam - logFactorial(k)) return k;
    }
  }
}

/** Two xoshiro128** outputs as a uniform in [0, 1) with 53 bits: (a * 2^26 + b) / 2^53. */
function uniform53(st: Int32Array): number {
  const a = xoshiroNext(st) >>> 5;
  const b = xoshiroNext(st) >>> 6;
  return (a * 67108864 + b) / 9007199254740992;
}

/** The next 32-bit unsigned output of xoshiro128** on state st = s0..s3, advancing it. */
function xoshiroNext(st: Int32Array): number {
  const s1 = st[1];
  const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
  const t = s1 << 9;
  st[2] ^= st[0];
  st[3] ^= s1;
  st[1] ^= st[2];
  st[0] ^= st[3];
  st[2] ^= t;
  st[3] = rotl(st[3], 11);
  return result;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

const LOG_FACT_TABLE: number[] = [0];
function logFactorial(k: number): number {
  if (k < 256) {
    while (LOG_FACT_TABLE.length <= k) LOG_FACT_TABLE.push(LOG_FACT_TABLE[LOG_FACT_TABLE.length - 1] + Math.log(LOG_FACT_TABLE.length));
    return LOG_FACT_TABLE[k];
  }
  // Stirling series; error < 1e-10 for k >= 256
  const x = k + 1;
  return (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) + 1 / (12 * x) - 1 / (360 * x ** 3);
}
