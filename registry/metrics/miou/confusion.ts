/**
 * Confusion-matrix accumulation for semantic segmentation and the two summary conventions.
 *
 * Counts are kept as `conf[gt * n + pred]` over pixels whose GT is not the ignore value; both
 * detectron2 (SemSegEvaluator) and mmseg (IoUMetric) derive everything from these counts:
 * intersection = diagonal, GT area = row sums, predicted area = column sums (pixels predicted
 * on ignored GT never enter either library's class block).
 */
import { UserError } from '../../../framework/api.js';
import type { LabelMap } from '../../../framework/api.js';

export class ConfusionMatrix {
  /** Float64 so that counts stay exact far beyond 2^32 pixels. */
  readonly counts: Float64Array;
  constructor(readonly numClasses: number) {
    this.counts = new Float64Array(numClasses * numClasses);
  }

  reset(): void {
    this.counts.fill(0);
  }

  /**
   * Add one (prediction, ground truth) pair. Throws a UserError naming `sample` on a shape
   * mismatch, a GT label outside [0, n) other than `ignoreIndex`, or a prediction outside [0, n)
   * where the GT is valid: a wrong class range must not turn into a silently wrong number.
   */
  add(pred: LabelMap, gt: LabelMap, ignoreIndex: number, sample: string): void {
    const n = this.numClasses;
    if (pred.height !== gt.height || pred.width !== gt.width) {
      throw new UserError(`metric: sample "${sample}": prediction is ${pred.height}x${pred.width} but the label map is ${gt.height}x${gt.width}`);
    }
    const size = gt.height * gt.width;
    if (pred.data.length !== size || gt.data.length !== size) {
      throw new UserError(`metric: sample "${sample}": label data length (pred ${pred.data.length}, gt ${gt.data.length}) does not match ${gt.height}x${gt.width}`);
    }
    const p = pred.data;
    const g = gt.data;
    const c = this.counts;
    if (p instanceof Uint8Array && g instanceof Uint8Array && size >= 16384) {
      this.addUint8(p, g, ignoreIndex, sample, gt.width);
      return;
    }
    for (let i = 0; i < size; i++) {
      const gi = g[i];
      if (gi === ignoreIndex) continue;
      const pi = p[i];
      // `>>> 0` maps negatives and non-integers' failures to huge values, so one compare checks the range
      if ((gi >>> 0) !== gi || gi >= n || (pi >>> 0) !== pi || pi >= n) {
        throw this.rangeError(sample, gi, pi, i, gt.width, ignoreIndex);
      }
      c[gi * n + pi]++;
    }
  }

  /**
   * The common case (large uint8 label maps, e.g. decoded PNGs): a branch-free joint histogram
   * over all 256x256 (gt, pred) byte pairs, folded into the class matrix once per image; the
   * range check runs on the 65,536 histogram cells instead of on every pixel.
   */
  private addUint8(p: Uint8Array, g: Uint8Array, ignoreIndex: number, sample: string, width: number): void {
    const n = this.numClasses;
    const hist = (this.scratch ??= new Uint32Array(65536));
    hist.fill(0);
    for (let i = 0; i < g.length; i++) hist[(g[i] << 8) | p[i]]++;
    const c = this.counts;
    for (let gv = 0; gv < 256; gv++) {
      if (gv === ignoreIndex) continue;
      const row = gv << 8;
      for (let pv = 0; pv < 256; pv++) {
        const k = hist[row | pv];
        if (k === 0) continue;
        if (gv >= n || pv >= n) {
          // locate the first offending pixel for the message
          for (let i = 0; i < g.length; i++) {
            if (g[i] !== ignoreIndex && (g[i] >= n || p[i] >= n)) throw this.rangeError(sample, g[i], p[i], i, width, ignoreIndex);
          }
        }
        c[gv * n + pv] += k;
      }
    }
  }

  private scratch: Uint32Array | undefined;

  private rangeError(sample: string, gi: number, pi: number, i: number, width: number, ignoreIndex: number): UserError {
    const at = `pixel (y=${Math.floor(i / width)}, x=${i % width})`;
    const n = this.numClasses;
    if ((gi >>> 0) !== gi || gi >= n) {
      return new UserError(`metric: sample "${sample}": label ${gi} at ${at} is outside the class range 0..${n - 1} and is not the ignore value ${ignoreIndex}`);
    }
    return new UserError(`metric: sample "${sample}": predicted class ${pi} at ${at} is outside the class range 0..${n - 1}`);
  }

  addCounts(other: ArrayLike<number>): void {
    if (other.length !== this.counts.length) {
      throw new UserError(`metric: cannot merge a state with ${other.length} confusion counts into one with ${this.counts.length} (different num_classes)`);
    }
    for (let i = 0; i < other.length; i++) this.counts[i] += other[i];
  }

  /** Per-class true positives, GT area and predicted area. */
  areas(): { tp: Float64Array; gtArea: Float64Array; predArea: Float64Array } {
    const n = this.numClasses;
    const tp = new Float64Array(n);
    const gtArea = new Float64Array(n);
    const predArea = new Float64Array(n);
    for (let g = 0; g < n; g++) {
      for (let p = 0; p < n; p++) {
        const v = this.counts[g * n + p];
        gtArea[g] += v;
        predArea[p] += v;
      }
      tp[g] = this.counts[g * n + g];
    }
    return { tp, gtArea, predArea };
  }
}

/** mmseg's LoadAnnotations(reduce_zero_label=True) on uint8 labels: 0 -> ignore, k -> k - 1, 255 stays ignore. */
export function reduceZeroLabel(gt: LabelMap): LabelMap {
  const out = new Uint8Array(gt.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = gt.data[i];
    // uint8 arithmetic as mmseg does it: 0 -> 255, subtract 1, 254 -> 255
    const a = v === 0 ? 255 : v;
    const b = (a - 1) & 0xff;
    out[i] = b === 254 ? 255 : b;
  }
  return { data: out, height: gt.height, width: gt.width };
}

/** detectron2 SemSegEvaluator summary (fractions; NaN where a class is not counted). */
export interface Detectron2Summary {
  iou: Float64Array;
  acc: Float64Array;
  miou: number;
  fwiou: number;
  macc: number;
  pacc: number;
}

export function detectron2Summary(cm: ConfusionMatrix): Detectron2Summary {
  const { tp, gtArea, predArea } = cm.areas();
  const n = cm.numClasses;
  const iou = new Float64Array(n).fill(NaN);
  const acc = new Float64Array(n).fill(NaN);
  const totalGt = gtArea.reduce((a, b) => a + b, 0);
  let iouSum = 0;
  let iouCount = 0;
  let accSum = 0;
  let accCount = 0;
  let fw = 0;
  let tpSum = 0;
  for (let c = 0; c < n; c++) {
    tpSum += tp[c];
    if (gtArea[c] <= 0) continue; // detectron2 skips classes absent from the ground truth
    acc[c] = tp[c] / gtArea[c];
    accSum += acc[c];
    accCount++;
    const union = gtArea[c] + predArea[c] - tp[c];
    if (union > 0) {
      iou[c] = tp[c] / union;
      iouSum += iou[c];
      iouCount++;
      fw += iou[c] * (gtArea[c] / totalGt);
    }
  }
  return { iou, acc, miou: iouSum / iouCount, fwiou: fw, macc: accSum / accCount, pacc: tpSum / totalGt };
}

/** mmseg IoUMetric summary: per-class float64 values and the float32 `round(100 * nanmean, 2)` it reports. */
export interface MmsegSummary {
  iou: Float64Array;
  acc: Float64Array;
  dice: Float64Array;
  precision: Float64Array;
  recall: Float64Array;
  fscore: Float64Array;
  aacc: number;
  /** nanmeans as fractions (float64). */
  means: { miou: number; macc: number; mdice: number; mprecision: number; mrecall: number; mfscore: number };
  /** What mmseg prints: float32 nanmean of float32 per-class values, x100, rounded to 2 decimals in float32. */
  reported: { aacc: number; miou: number; macc: number; mdice: number; mprecision: number; mrecall: number; mfscore: number };
}

function nanmean(v: ArrayLike<number>): number {
  let s = 0;
  let k = 0;
  for (let i = 0; i < v.length; i++) {
    if (!Number.isNaN(v[i])) {
      s += v[i];
      k++;
    }
  }
  return k === 0 ? NaN : s / k;
}

/** numpy's nanmean on a float32 array, summed in float32 (pairwise in blocks of 8 for long arrays). */
function nanmeanF32(v: ArrayLike<number>): number {
  // numpy replaces NaN by 0, sums the whole array, then divides by the count of non-NaN values
  const vals: number[] = [];
  let k = 0;
  for (let i = 0; i < v.length; i++) {
    const nan = Number.isNaN(v[i]);
    vals.push(nan ? 0 : Math.fround(v[i]));
    if (!nan) k++;
  }
  if (k === 0) return NaN;
  return Math.fround(pairwiseSumF32(vals, 0, vals.length) / k);
}

/** numpy's pairwise summation (8-way unrolled below 128 elements), in float32. */
function pairwiseSumF32(a: number[], lo: number, n: number): number {
  const f = Math.fround;
  if (n < 8) {
    let s = -0;
    for (let i = 0; i < n; i++) s = f(s + a[lo + i]);
    return s;
  }
  if (n <= 128) {
    const r = a.slice(lo, lo + 8).map(f);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = f(r[j] + a[lo + i + j]);
    let s = f(f(f(r[0] + r[1]) + f(r[2] + r[3])) + f(f(r[4] + r[5]) + f(r[6] + r[7])));
    for (; i < n; i++) s = f(s + a[lo + i]);
    return s;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return f(pairwiseSumF32(a, lo, n2) + pairwiseSumF32(a, lo + n2, n - n2));
}

/** numpy's `np.round(x, 2)` on a float32: multiply, round half to even, divide, each in float32. */
function round2F32(x: number): number {
  const f = Math.fround;
  const y = f(f(x) * 100);
  let r = Math.round(y);
  if (Math.abs(y % 1) === 0.5 && r % 2 !== 0) r -= 1; // half to even
  return f(r / 100);
}

export function mmsegSummary(cm: ConfusionMatrix): MmsegSummary {
  const { tp, gtArea, predArea } = cm.areas();
  const n = cm.numClasses;
  const mk = () => new Float64Array(n);
  const iou = mk();
  const acc = mk();
  const dice = mk();
  const precision = mk();
  const recall = mk();
  const fscore = mk();
  // the same values as mmseg computes them in float32 torch tensors, for the reported summary
  const f32 = { iou: mk(), acc: mk(), dice: mk(), precision: mk(), recall: mk(), fscore: mk() };
  const f = Math.fround;
  for (let c = 0; c < n; c++) {
    const I = tp[c];
    const P = predArea[c];
    const L = gtArea[c];
    const U = P + L - I;
    iou[c] = I / U;
    acc[c] = I / L;
    dice[c] = (2 * I) / (P + L);
    precision[c] = I / P;
    recall[c] = I / L;
    fscore[c] = (2 * (precision[c] * recall[c])) / (precision[c] + recall[c]);
    f32.iou[c] = f(f(I) / f(U));
    f32.acc[c] = f(f(I) / f(L));
    f32.dice[c] = f(f(2 * I) / f(f(P) + f(L)));
    f32.precision[c] = f(f(I) / f(P));
    f32.recall[c] = f32.acc[c];
    f32.fscore[c] = f(f(f(2 * f32.precision[c]) * f32.recall[c]) / f(f32.precision[c] + f32.recall[c]));
  }
  const tpSum = tp.reduce((a, b) => a + b, 0);
  const gtSum = gtArea.reduce((a, b) => a + b, 0);
  const aacc = tpSum / gtSum;
  const rep = (v: Float64Array) => round2F32(f(nanmeanF32(v) * 100));
  return {
    iou, acc, dice, precision, recall, fscore, aacc,
    means: { miou: nanmean(iou), macc: nanmean(acc), mdice: nanmean(dice), mprecision: nanmean(precision), mrecall: nanmean(recall), mfscore: nanmean(fscore) },
    reported: {
      aacc: round2F32(f(f(f(tpSum) / f(gtSum)) * 100)),
      miou: rep(f32.iou), macc: rep(f32.acc), mdice: rep(f32.dice), mprecision: rep(f32.precision), mrecall: rep(f32.recall), mfscore: rep(f32.fscore),
    },
  };
}
