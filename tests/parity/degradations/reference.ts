/** Loading the golden reference fixtures (tests/fixtures/reference/, see its README). */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface RefArray {
  shape: number[];
  dtype: string;
  data: (number | string)[];
}

export type RefCase = Record<string, any> & { name: string };

export function loadReference(file: string): { cases: RefCase[]; [k: string]: unknown } {
  const path = resolve(process.cwd(), 'tests/fixtures/reference', file);
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** float32 arrays are stored as the shortest round-trip decimal: fround restores them exactly. */
export function f32(a: RefArray): Float32Array {
  return Float32Array.from(a.data, (v) => Math.fround(Number(v)));
}
export function f64(a: RefArray): Float64Array {
  return Float64Array.from(a.data, (v) => Number(v));
}

/** NCHW flat -> NHWC flat. */
export function nchwToNhwc(d: ArrayLike<number>, n: number, c: number, h: number, w: number): Float32Array {
  const o = new Float32Array(n * h * w * c);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    o[((b * h + y) * w + x) * c + ch] = d[((b * c + ch) * h + y) * w + x];
  }
  return o;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
