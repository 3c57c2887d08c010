import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../../framework/api.js';
import type { HeadOutput, MaskPrediction } from '../../../framework/api.js';
import type { LossResult, PreparedSegLoss, SegLoss, SegTargets } from '../../../framework/api.js';
import { pointSample } from '../../heads/common/sampling.js';
import { linearSumAssignment } from './hungarian.js';
import { disposeTargets, maskTargets, type ImageTargets } from './targets.js';

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

/** Uniform random points in [0,1]^2 drawn from `rng`: [n, count, 2] (x, y). */
export function randomPoints(rng: Rng, n: number, count: number): tf.Tensor3D {
  const a = new Float32Array(n * count * 2);
  for (let i = 0; i < a.length; i++) a[i] = rng.random();
  return tf.tensor3d(a, [n, count, 2]);
}

/**
 * Mask2Former's get_uncertain_point_coords_with_randomness: draw oversample*P random points,
 * keep the importance*P whose logits are closest to 0 (most uncertain), fill up with fresh
 * random points. logits: [M, h, w, 1]; returns [M, P, 2] (no gradient flows through it).
 */
export function uncertainPoints(logits: tf.Tensor4D, rng: Rng, numPoints: number, oversample: number, importance: number): tf.Tensor3D {
  const M = logits.shape[0];
  const nSampled = Math.floor(numPoints * oversample);
  const nImportant = Math.floor(importance * numPoints);
  const cand = randomPoints(rng, M, nSampled);
  const unc = tf.tidy(() => tf.neg(tf.abs(tf.reshape(pointSample(logits, cand), [M, nSampled])))).dataSync();
  const c = cand.dataSync();
  const out = new Float32Array(M * numPoints * 2);
  for (let m = 0; m < M; m++) {
    const idx = Array.from({ length: nSampled }, (_, i) => i);
    const u = unc.subarray(m * nSampled, (m + 1) * nSampled);
    idx.sort((a, b) => u[b] - u[a] || a - b); // most uncertain first; ties by index, deterministic
    for (let k = 0; k < nImportant; k++) {
      out[(m * numPoints + k) * 2] = c[(m * nSampled + idx[k]) * 2];
      out[(m * numPoints + k) * 2 + 1] = c[(m * nSampled + idx[k]) * 2 + 1];
    }
    for (let k = nImportant; k < numPoints; k++) {
      out[(m * numPoints + k) * 2] = rng.random();
      out[(m * numPoints + k) * 2 + 1] = rng.random();
    }
  }
  cand.dispose();
  return tf.tensor3d(out, [M, numPoints, 2]);
}

/** Sigmoid BCE with logits, elementwise: max(x,0) - x*t + log(1 + exp(-|x|)). */
function bceWithLogits(x: tf.Tensor, t: tf.Tensor): tf.Tensor {
  return tf.add(tf.sub(tf.relu(x), tf.mul(x, t)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
}

export interface MatchResult {
  /** Matched query index per target, in target order after sorting by query (scipy order). */
  queries: number[];
  targets: number[];
}

/**
 * Hungarian matching for one image (no gradient): cost = classWeight * (-p(class)) +
 * maskWeight * pointwise BCE + diceWeight * dice, with masks compared on shared random points.
 * classLogits [Q, C+1], maskLogits [h, w, Q], target masks [K, H, W]; points [P, 2].
 */
export function matchImage(classLogits: tf.Tensor2D, maskLogits: tf.Tensor3D, tgt: ImageTargets, points: tf.Tensor2D, o: Pick<MaskCriterionOptions, 'classWeight' | 'maskWeight' | 'diceWeight'>): MatchResult {
  if (!tgt.masks || tgt.classes.length === 0) return { queries: [], targets: [] };
  const K = tgt.classes.length;
  const Q = classLogits.shape[0];
  const cost = tf.tidy(() => {
    const prob = tf.softmax(classLogits, -1);
    const costClass = tf.neg(tf.gather(prob, tf.tensor1d(tgt.classes, 'int32'), 1)); // [Q, K]
    const P = points.shape[0];
    const pts = tf.expandDims(points, 0) as tf.Tensor3D;
    const outPts = tf.transpose(tf.reshape(pointSample(tf.expandDims(maskLogits, 0) as tf.Tensor4D, pts), [P, Q])); // [Q, P]
    const tgtPts = tf.transpose(tf.reshape(pointSample(tf.expandDims(tf.transpose(tgt.masks as tf.Tensor3D, [1, 2, 0]), 0) as tf.Tensor4D, pts), [P, K])); // [K, P]
    const pos = bceWithLogits(outPts, tf.onesLike(outPts));
    const neg = bceWithLogits(outPts, tf.zerosLike(outPts));
    const costMask = tf.div(tf.add(tf.matMul(pos, tgtPts, false, true), tf.matMul(neg, tf.sub(1, tgtPts), false, true)), P);
    const sig = tf.sigmoid(outPts);
    const num = tf.mul(2, tf.matMul(sig, tgtPts, false, true));
    const den = tf.add(tf.sum(sig, -1, true), tf.reshape(tf.sum(tgtPts, -1), [1, K]));
    const costDice = tf.sub(1, tf.div(tf.add(num, 1), tf.add(den, 1)));
    return tf.addN([tf.mul(costMask, o.maskWeight), tf.mul(costClass, o.classWeight), tf.mul(costDice, o.diceWeight)]);
  });
  const data = cost.dataSync();
  cost.dispose();
  const a = linearSumAssignment(data, Q, K);
  return { queries: [...a.rows], targets: [...a.cols] };
}

/** Points to use for one prediction layer; tests inject fixed ones, training draws from the rng. */
export interface PointSource {
  matcher(batchIndex: number): tf.Tensor2D;
  loss(maskLogits: tf.Tensor4D): tf.Tensor3D;
}

function rngPoints(rng: Rng, o: MaskCriterionOptions): PointSource {
  return {
    matcher: () => tf.tidy(() => tf.squeeze(randomPoints(rng, 1, o.numPoints), [0]) as tf.Tensor2D),
    loss: (m) => uncertainPoints(m, rng, o.numPoints, o.oversampleRatio, o.importanceSampleRatio),
  };
}

export interface LayerLosses {
  loss_ce: tf.Scalar;
  loss_mask: tf.Scalar;
  loss_dice: tf.Scalar;
  matches: MatchResult[];
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

/**
 * One prediction layer's host-side plan, read from the values of a forward pass: the Hungarian
 * matches, then as tensors the classification targets (one-hot rows [N*Q, C+1] and their
 * weights, no-object rows weighted noObjectWeight) and, for the matched masks padded to
 * `paddedRows`, their flat query index (b * Q + q), the sampled points [R, P, 2], the target
 * masks read at those points [R, P] and a row mask (1 = a real match).
 */
export function planLayer(pred: MaskPrediction, targets: ImageTargets[], points: PointSource, o: MaskCriterionOptions): { tensors: Record<string, tf.Tensor>; matches: MatchResult[] } {
  const N = pred.classLogits.shape[0];
  const Q = pred.classLogits.shape[1];
  const C = o.numClasses;
  const matches: MatchResult[] = [];
  for (let b = 0; b < N; b++) {
    const cl = tf.tidy(() => tf.squeeze(tf.slice(pred.classLogits, [b, 0, 0], [1, -1, -1]), [0]) as tf.Tensor2D);
    const ml = tf.tidy(() => tf.squeeze(tf.slice(pred.maskLogits, [b, 0, 0, 0], [1, -1, -1, -1]), [0]) as tf.Tensor3D);
    const pts = points.matcher(b);
    matches.push(matchImage(cl, ml, targets[b] as ImageTargets, pts, o));
    tf.dispose([cl, ml, pts]);
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
  let r = 0;
  matches.forEach((m, b) => m.queries.forEach((q) => ((srcIdx[r] = b * Q + q), (rows[r++] = 1))));
  const [, h, w] = pred.maskLogits.shape;
  // the real rows' points are drawn as without padding (the same random stream); padded rows read the centre
  let coords: tf.Tensor3D;
  let labels: tf.Tensor2D;
  if (matched > 0) {
    // matched predicted masks [M, h, w, 1] (values only: the points are chosen without gradient) and their targets [M, H, W, 1]
    const src = tf.tidy(() => tf.expandDims(tf.gather(tf.reshape(tf.transpose(pred.maskLogits, [0, 3, 1, 2]), [N * Q, h, w]), tf.tensor1d(srcIdx.subarray(0, matched), 'int32')), 3) as tf.Tensor4D);
    const tgt = tf.tidy(() => {
      const parts: tf.Tensor[] = [];
      matches.forEach((m, b) => {
        if (m.queries.length) parts.push(tf.gather((targets[b] as ImageTargets).masks as tf.Tensor3D, tf.tensor1d(m.targets, 'int32'), 0));
      });
      return tf.expandDims(tf.concat(parts, 0), 3) as tf.Tensor4D;
    });
    const real = points.loss(src);
    const P = real.shape[1];
    [coords, labels] = tf.tidy(() => {
      const lab = tf.reshape(pointSample(tgt, real), [matched, P]);
      if (R === matched) return [tf.clone(real), lab] as [tf.Tensor3D, tf.Tensor2D];
      return [tf.concat([real, tf.fill([R - matched, P, 2], 0.5)], 0), tf.concat([lab, tf.zeros([R - matched, P])], 0)] as [tf.Tensor3D, tf.Tensor2D];
    });
    tf.dispose([src, tgt, real]);
  } else {
    coords = tf.fill([R, o.numPoints, 2], 0.5) as tf.Tensor3D;
    labels = tf.zeros([R, o.numPoints]);
  }
  return {
    matches,
    tensors: { onehot: tf.tensor2d(onehot, [N * Q, C + 1]), clsW: tf.tensor1d(clsW), src: tf.tensor1d(srcIdx, 'int32'), coords, labels, rows: tf.tensor1d(rows) },
  };
}

/** Unweighted class / mask / dice losses of one layer from its plan (pure tensor ops: compilable). */
export function layerTerms(pred: MaskPrediction, plan: Record<string, tf.Tensor>, numMasks: tf.Tensor): { loss_ce: tf.Scalar; loss_mask: tf.Scalar; loss_dice: tf.Scalar } {
  const [N, Q, C1] = pred.classLogits.shape;
  const [, h, w] = pred.maskLogits.shape;
  const logp = tf.logSoftmax(tf.reshape(pred.classLogits, [N * Q, C1]));
  const nll = tf.neg(tf.sum(tf.mul(logp, plan.onehot as tf.Tensor), -1));
  const loss_ce = tf.div(tf.sum(tf.mul(nll, plan.clsW as tf.Tensor)), tf.sum(plan.clsW as tf.Tensor)) as tf.Scalar;
  const coords = plan.coords as tf.Tensor3D;
  const [R, P] = coords.shape;
  const src = tf.expandDims(tf.gather(tf.reshape(tf.transpose(pred.maskLogits, [0, 3, 1, 2]), [N * Q, h, w]), plan.src as tf.Tensor), 3) as tf.Tensor4D;
  const logits = tf.reshape(pointSample(src, coords), [R, P]);
  const labels = plan.labels as tf.Tensor;
  const rows = plan.rows as tf.Tensor;
  const loss_mask = tf.div(tf.sum(tf.mul(tf.mean(bceWithLogits(logits, labels), 1), rows)), numMasks) as tf.Scalar;
  const sig = tf.sigmoid(logits);
  const num = tf.mul(2, tf.sum(tf.mul(sig, labels), 1));
  const den = tf.add(tf.sum(sig, 1), tf.sum(labels, 1));
  const loss_dice = tf.div(tf.sum(tf.mul(tf.sub(1, tf.div(tf.add(num, 1), tf.add(den, 1))), rows)), numMasks) as tf.Scalar;
  return { loss_ce, loss_mask, loss_dice };
}

/** Unweighted class / mask / dice losses of one prediction layer (Mask2Former SetCriterion semantics). */
export function layerLosses(pred: MaskPrediction, targets: ImageTargets[], points: PointSource, o: MaskCriterionOptions): LayerLosses {
  const plan = planLayer(pred, targets, points, o);
  const numMasks = tf.scalar(Math.max(1, targets.reduce((s, t) => s + t.classes.length, 0)));
  const terms = tf.tidy(() => layerTerms(pred, plan.tensors, numMasks));
  tf.dispose([numMasks, ...Object.values(plan.tensors)]);
  return { ...terms, matches: plan.matches };
}

/**
 * Mask2Former's SetCriterion: Hungarian matching, weighted CE / point BCE / point dice, deep
 * supervision. Host work (matching, uncertainty point selection) is `prepare`; the loss itself
 * is `computePrepared`, pure tensor ops, so a training step can compile around it (the
 * SegLoss contract); `compute` is the two in a row.
 */
export class MaskClassificationLoss implements SegLoss {
  readonly type = 'mask2former';
  constructor(readonly o: MaskCriterionOptions) {}

  private layers(output: HeadOutput): MaskPrediction[] {
    if (output.kind !== 'mask-classification') throw new Error(`loss/mask2former needs a mask-classification head output, got ${output.kind}`);
    return [output.final, ...(this.o.deepSupervision ? output.aux : [])];
  }

  prepare(output: HeadOutput, targets: SegTargets, rng: Rng, points?: (layer: number) => PointSource): PreparedSegLoss {
    const layers = this.layers(output);
    const tg = maskTargets(targets, this.o.numClasses);
    try {
      const out: PreparedSegLoss = { numMasks: tf.scalar(Math.max(1, tg.reduce((s, t) => s + t.classes.length, 0))) };
      layers.forEach((pred, i) => {
        const src = points ? points(i) : rngPoints(rng.fork('layer', i), this.o);
        for (const [k, t] of Object.entries(planLayer(pred, tg, src, this.o).tensors)) out[`l${i}/${k}`] = t;
      });
      return out;
    } finally {
      disposeTargets(tg);
    }
  }

  computePrepared(output: HeadOutput, prepared: PreparedSegLoss): LossResult {
    const layers = this.layers(output);
    const terms = tf.tidy(() => {
      const out: Record<string, tf.Scalar> = {};
      layers.forEach((pred, i) => {
        const plan: Record<string, tf.Tensor> = {};
        for (const k of ['onehot', 'clsW', 'src', 'coords', 'labels', 'rows']) plan[k] = prepared[`l${i}/${k}`] as tf.Tensor;
        const l = layerTerms(pred, plan, prepared.numMasks as tf.Tensor);
        const suffix = i === 0 ? '' : `_aux${i - 1}`;
        out[`loss_ce${suffix}`] = tf.mul(l.loss_ce, this.o.classWeight) as tf.Scalar;
        out[`loss_mask${suffix}`] = tf.mul(l.loss_mask, this.o.maskWeight) as tf.Scalar;
        out[`loss_dice${suffix}`] = tf.mul(l.loss_dice, this.o.diceWeight) as tf.Scalar;
      });
      return out;
    });
    return { total: tf.addN(Object.values(terms)) as tf.Scalar, terms };
  }

  compute(output: HeadOutput, targets: SegTargets, rng: Rng, points?: (layer: number) => PointSource): LossResult {
    const prepared = this.prepare(output, targets, rng, points);
    try {
      return this.computePrepared(output, prepared);
    } finally {
      tf.dispose(Object.values(prepared));
    }
  }
}
