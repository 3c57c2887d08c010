/**
 * The resize definition as plain float32 loops (tests only): each axis through its tap table,
 * width first, acc = fround(acc + fround(v * w)) tap by tap, as torch's CPU kernel rounds.
 * Every tensor form of resize (per-tap ops, gathered taps) must equal it to the bit.
 */
import { axisTaps, resizeOutputSize, type AxisTaps, type ResizeMode } from '../../../registry/degradations/resize/resize.js';

const f = Math.fround;

function axis(src: Float32Array, n: number, h: number, w: number, c: number, which: 1 | 2, t: AxisTaps): Float32Array {
  const [oh, ow] = which === 1 ? [t.out, w] : [h, t.out];
  const out = new Float32Array(n * oh * ow * c);
  for (let b = 0; b < n; b++) for (let y = 0; y < oh; y++) for (let x = 0; x < ow; x++) for (let ch = 0; ch < c; ch++) {
    const o = which === 1 ? y : x;
    let acc = 0;
    for (let k = 0; k < t.taps; k++) {
      const i = t.index[o * t.taps + k] as number;
      const v = which === 1 ? src[((b * h + i) * w + x) * c + ch] : src[((b * h + y) * w + i) * c + ch];
      const term = f((v as number) * (t.weight[o * t.taps + k] as number));
      acc = k === 0 ? term : f(acc + term);
    }
    out[((b * oh + y) * ow + x) * c + ch] = acc;
  }
  return out;
}

/** resize(x, { scaleFactor }, mode) on an NHWC buffer. */
export function resizeReference(src: Float32Array, shape: readonly [number, number, number, number], scale: number, mode: ResizeMode): { data: Float32Array; shape: [number, number, number, number] } {
  const [n, h, w, c] = shape;
  const [oh, ow] = resizeOutputSize(h, w, { scaleFactor: scale });
  const wide = axis(src, n, h, w, c, 2, axisTaps(w, ow, mode, 1 / scale));
  return { data: axis(wide, n, h, ow, c, 1, axisTaps(h, oh, mode, 1 / scale)), shape: [n, oh, ow, c] };
}

/** Shrinking and growing factors for every mode (shrinking axes take the gathered form). */
export const RESIZE_CASES: readonly [number, ResizeMode][] = [[0.5, 'bicubic'], [0.83, 'bicubic'], [0.7, 'area'], [0.15, 'area'], [0.3, 'bilinear'], [1.3, 'bilinear'], [1.5, 'bicubic'], [1.5, 'area']];
