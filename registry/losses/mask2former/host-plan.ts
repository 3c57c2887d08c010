/**
 * The Mask2Former criterion's host plan, on plain arrays: Hungarian matching, uncertainty point
 * selection and point labels for one prediction layer. No tfjs here: the criterion runs it on
 * the main thread and, for part of the layers, on a helper thread (plan-worker.ts).
 */
import type { Rng } from '../../../framework/host.js';
import { linearSumAssignment } from './hungarian.js';
import { cornerTable, sampleChannel, sampleChannels, samplePoints } from './host-sampling.js';
import type { ImageTargets } from './targets.js';

/** Mask2Former SetCriterion settings (defaults: docs/method.md / Mask2Former ADE20K semantic). */
export interface MaskCriterionOptions {
  numClasses: number;
  classWeight: number;
  maskWeight: number;
  diceWeight: number;
  /** Weight of the "no object" class in the classification loss (eos_coef). */
  noObjectWeight: number;
  numPoints: number;
  oversampleRatio: number;
  importanceSampleRatio: number;
  deepSupervision: boolean;
}

export const MASK2FORMER_LOSS_DEFAULTS: Omit<MaskCriterionOptions, 'numClasses'> = {
  classWeight: 2,
  maskWeight: 5,
  diceWeight: 5,
  noObjectWeight: 0.1,
  numPoints: 12544,
  oversampleRatio: 3,
  importanceSampleRatio: 0.75,
  deepSupervision: true,
};

/** uncertainPoints on host values: `logits` is [M, h, w] (row-major); returns M * numPoints * 2 coordinates. */
export function uncertainPointsHost(logits: Float32Array, M: number, h: number, w: number, rng: Rng, numPoints: number, oversample: number, importance: number): Float32Array {
  const nSampled = Math.floor(numPoints * oversample);
  const nImportant = Math.floor(importance * numPoints);
  // the candidates of every row first, then the fill-ups: the order the random stream is read in
  const c = rng.fillUniform(new Float32Array(M * nSampled * 2)) as Float32Array;
  const out = new Float32Array(M * numPoints * 2);
  const u = new Float32Array(nSampled);
  for (let m = 0; m < M; m++) {
    samplePoints(c.subarray(m * nSampled * 2, (m + 1) * nSampled * 2), nSampled, logits, m * h * w, h, w, u);
    const idx = mostUncertainFirst(u, nSampled, nImportant);
    for (let k = 0; k < nImportant; k++) {
      out[(m * numPoints + k) * 2] = c[(m * nSampled + (idx[k] as number)) * 2] as number;
      out[(m * numPoints + k) * 2 + 1] = c[(m * nSampled + (idx[k] as number)) * 2 + 1] as number;
    }
  }
  // the fill-ups, drawn in one go in the same order
  const fill = numPoints - nImportant;
  const fresh = rng.fillUniform(new Float32Array(M * fill * 2)) as Float32Array;
  for (let m = 0; m < M; m++) out.set(fresh.subarray(m * fill * 2, (m + 1) * fill * 2), (m * numPoints + nImportant) * 2);
  return out;
}

/**
 * Candidate indices ordered by |logit| ascending (most uncertain first), ties by index: one
 * native numeric sort of keys (float32 bits of |u|) * 2^b + index, exact in float64 while the
 * bits fit in 53, instead of a comparator sort (this runs for every matched mask per step).
 * With `first` < n only the first `first` entries are filled (the rest of the result is
 * unspecified): a selection moves the `first` smallest keys to the front and only those are
 * sorted, the same entries as the full sort's (the keys are distinct).
 */
export function mostUncertainFirst(u: Float32Array, n: number, first = n): Int32Array {
  const b = Math.max(1, Math.ceil(Math.log2(n)));
  const out = new Int32Array(n);
  if (31 + b > 53) {
    const idx = Array.from({ length: n }, (_, i) => i);
    idx.sort((x, y) => Math.abs(u[x] as number) - Math.abs(u[y] as number) || x - y);
    out.set(idx);
    return out;
  }
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  const keys = new Float64Array(n);
  const scale = 2 ** b;
  for (let i = 0; i < n; i++) {
    f[0] = Math.abs(u[i] as number); // non-negative float32: its bit pattern orders like its value
    keys[i] = (bits[0] as number) * scale + i;
  }
  const k = Math.max(0, Math.min(first, n));
  if (k < n) {
    selectSmallest(keys, k);
    keys.subarray(0, k).sort();
  } else keys.sort();
  for (let i = 0; i < k; i++) out[i] = (keys[i] as number) % scale;
  return out;
}

/** Reorder `a` so that its `k` smallest values (distinct values) come first, in any order: quickselect, median of three. */
function selectSmallest(a: Float64Array, k: number): void {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo && k > lo && k <= hi) {
    const mid = (lo + hi) >> 1;
    // median of a[lo], a[mid], a[hi] as the pivot
    const x = a[lo] as number, y = a[mid] as number, z = a[hi] as number;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    // now a[lo..j] <= pivot <= a[i..hi]; continue on the side holding the k-th boundary
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

export interface MatchResult {
  /** Matched query index per target, in target order after sorting by query (scipy order). */
  queries: number[];
  targets: number[];
}

/**
 * Hungarian matching for one image (no gradient), on host values: cost = classWeight *
 * (-p(class)) + maskWeight * pointwise BCE + diceWeight * dice, with masks compared on shared
 * random points. classLogits [Q, C+1] and maskLogits [h, w, Q] start at the given offsets of
 * the layer's arrays; target masks [K, H, W]; points [P, 2] in [0, 1].
 */
export function matchImage(
  pred: { classLogits: Float32Array; classOffset: number; maskLogits: Float32Array; maskOffset: number; Q: number; C1: number; h: number; w: number },
  tgt: ImageTargets,
  points: Float32Array,
  o: Pick<MaskCriterionOptions, 'classWeight' | 'maskWeight' | 'diceWeight'>,
): MatchResult {
  if (!tgt.data || tgt.classes.length === 0) return { queries: [], targets: [] };
  const { Q, C1, h, w } = pred;
  const K = tgt.classes.length;
  const P = points.length / 2;
  const outTable = cornerTable(points, P, h, w);
  const tgtTable = cornerTable(points, P, tgt.height, tgt.width);
  const out = new Float32Array(Q * P); // [Q, P]
  sampleChannels(pred.maskLogits, pred.maskOffset, Q, outTable, out);
  const tp = new Float32Array(K * P); // [K, P]
  for (let k = 0; k < K; k++) sampleChannel(tgt.data, k * tgt.height * tgt.width, 1, 0, tgtTable, tp, k * P);
  const tgtSum = Array.from({ length: K }, (_, k) => tp.subarray(k * P, (k + 1) * P).reduce((a, b) => a + b, 0));
  const cost = new Float32Array(Q * K);
  // per-point terms of one query, reused across queries (allocating them per query was a
  // good part of the planner's garbage)
  const pos = new Float64Array(P);
  const neg = new Float64Array(P);
  const sig = new Float64Array(P);
  for (let q = 0; q < Q; q++) {
    // class probabilities (softmax over C+1)
    let mx = -Infinity;
    for (let j = 0; j < C1; j++) mx = Math.max(mx, pred.classLogits[pred.classOffset + q * C1 + j] as number);
    let z = 0;
    for (let j = 0; j < C1; j++) z += Math.exp((pred.classLogits[pred.classOffset + q * C1 + j] as number) - mx);
    const xs = out.subarray(q * P, (q + 1) * P);
    let sigSum = 0;
    for (let p = 0; p < P; p++) {
      // the cross-entropies against 1 and 0 (softplus(-x), softplus(x)) and the sigmoid from one
      // exp and one log1p (this loop runs for every query and point of every layer and image per
      // step): with e = exp(-|x|), log1p(e) is shared, and sigmoid(x) = 1 / (1 + e) for x >= 0,
      // e / (1 + e) below
      const x = xs[p] as number;
      const e = Math.exp(-Math.abs(x));
      const l = Math.log1p(e);
      pos[p] = Math.max(-x, 0) + l;
      neg[p] = Math.max(x, 0) + l;
      sig[p] = x >= 0 ? 1 / (1 + e) : e / (1 + e);
      sigSum += sig[p] as number;
    }
    for (let k = 0; k < K; k++) {
      const t0 = k * P;
      let m = 0;
      let inter = 0;
      for (let p = 0; p < P; p++) {
        const tv = tp[t0 + p] as number;
        m += (pos[p] as number) * tv + (neg[p] as number) * (1 - tv);
        inter += (sig[p] as number) * tv;
      }
      const costMask = m / P;
      const costDice = 1 - (2 * inter + 1) / (sigSum + (tgtSum[k] as number) + 1);
      const costClass = -Math.exp((pred.classLogits[pred.classOffset + q * C1 + (tgt.classes[k] as number)] as number) - mx) / z;
      cost[q * K + k] = o.maskWeight * costMask + o.classWeight * costClass + o.diceWeight * costDice;
    }
  }
  const a = linearSumAssignment(cost, Q, K);
  return { queries: [...a.rows], targets: [...a.cols] };
}

/** A point source's host forms: what the plan reads. */
export interface HostPoints {
  /** the matcher's points [count, 2] (x, y) in [0, 1] for image `batchIndex` */
  matcher(batchIndex: number): Float32Array;
  /** the loss's points for host logits [M, h, w]: M * count * 2 values */
  loss(maskLogits: Float32Array, M: number, h: number, w: number): Float32Array;
}

/** Training's points on the host: uniform for the matcher, uncertainty-sampled for the loss, both from `rng`. */
export function rngHostPoints(rng: Rng, o: MaskCriterionOptions): HostPoints {
  return {
    matcher: () => rng.fillUniform(new Float32Array(o.numPoints * 2)) as Float32Array,
    loss: (m, M, h, w) => uncertainPointsHost(m, M, h, w, rng, o.numPoints, o.oversampleRatio, o.importanceSampleRatio),
  };
}

/**
 * Matched rows padded to a few fixed sizes, so a compiled step sees few shapes: every row up to
 * N * min(Q, classes) when that is small (one shape), else the next power of two.
 */
export function paddedRows(matched: number, N: number, Q: number, numClasses: number): number {
  const cap = N * Math.min(Q, numClasses);
  if (cap <= 64) return Math.max(cap, 1);
  return Math.min(cap, 2 ** Math.ceil(Math.log2(Math.max(matched, 1))));
}

/** One layer's predictions as values: classLogits [N, Q, C+1], maskLogits [N, h, w, Q] (row-major). */
export interface LayerValues {
  classLogits: Float32Array;
  maskLogits: Float32Array;
  N: number;
  Q: number;
  C1: number;
  h: number;
  w: number;
}

/** planLayerHost's result: the matches and the plan's arrays (their shapes in `planLayer`). */
export interface HostLayerPlan {
  matches: MatchResult[];
  onehot: Float32Array;
  clsW: Float32Array;
  src: Int32Array;
  coords: Float32Array;
  labels: Float32Array;
  rows: Float32Array;
  /** padded matched rows and points per row */
  R: number;
  P: number;
}

/**
 * One prediction layer's host-side plan: the Hungarian matches, the classification targets
 * (one-hot rows [N*Q, C+1] and their weights, no-object rows weighted noObjectWeight) and, for
 * the matched masks padded to `paddedRows`, their flat query index (b * Q + q), the sampled
 * points [R, P, 2], the target masks read at those points [R, P] and a row mask (1 = a real match).
 */
export function planLayerHost(v: LayerValues, targets: ImageTargets[], points: HostPoints, o: MaskCriterionOptions): HostLayerPlan {
  const { classLogits, maskLogits, N, Q, C1, h, w } = v;
  const C = o.numClasses;
  const matches: MatchResult[] = [];
  for (let b = 0; b < N; b++) {
    matches.push(matchImage({ classLogits, classOffset: b * Q * C1, maskLogits, maskOffset: b * h * w * Q, Q, C1, h, w }, targets[b] as ImageTargets, points.matcher(b), o));
  }
  // classification: matched queries get their target class, the rest "no object" (index C)
  const onehot = new Float32Array(N * Q * (C + 1));
  const clsW = new Float32Array(N * Q).fill(o.noObjectWeight);
  for (let i = 0; i < N * Q; i++) onehot[i * (C + 1) + C] = 1;
  matches.forEach((m, b) =>
    m.queries.forEach((q, k) => {
      const row = b * Q + q;
      onehot[row * (C + 1) + C] = 0;
      onehot[row * (C + 1) + ((targets[b] as ImageTargets).classes[m.targets[k] as number] as number)] = 1;
      clsW[row] = 1;
    }),
  );
  const matched = matches.reduce((s, m) => s + m.queries.length, 0);
  const R = paddedRows(matched, N, Q, C);
  const srcIdx = new Int32Array(R);
  const rows = new Float32Array(R);
  const pairs: [number, number, number][] = []; // (image, query, target) per real row
  matches.forEach((m, b) => m.queries.forEach((q, k) => pairs.push([b, q, m.targets[k] as number])));
  pairs.forEach(([b, q], r) => ((srcIdx[r] = b * Q + q), (rows[r] = 1)));
  // the real rows' points are drawn as without padding (the same random stream); padded rows read the centre
  let P = o.numPoints;
  let coords = new Float32Array(R * P * 2).fill(0.5);
  let labels = new Float32Array(R * P);
  if (matched > 0) {
    // the matched predicted masks [M, h, w] (values only: the points are chosen without gradient)
    const src = new Float32Array(matched * h * w);
    pairs.forEach(([b, q], r) => {
      for (let i = 0; i < h * w; i++) src[r * h * w + i] = maskLogits[(b * h * w + i) * Q + q] as number;
    });
    const realData = points.loss(src, matched, h, w);
    P = realData.length / (matched * 2);
    coords = new Float32Array(R * P * 2).fill(0.5);
    coords.set(realData);
    labels = new Float32Array(R * P);
    pairs.forEach(([b, , k], r) => {
      const t = targets[b] as ImageTargets;
      samplePoints(realData.subarray(r * P * 2, (r + 1) * P * 2), P, t.data as Float32Array, k * t.height * t.width, t.height, t.width, labels, r * P);
    });
  }
  return { matches, onehot, clsW, src: srcIdx, coords, labels, rows, R, P };
}
