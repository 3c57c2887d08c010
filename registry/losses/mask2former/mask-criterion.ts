import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../../framework/api.js';
import type { HeadOutput, MaskPrediction } from '../../../framework/api.js';
import type { LossResult, SegLoss, SegTargets } from '../../../framework/api.js';
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

/** Unweighted class / mask / dice losses of one prediction layer (Mask2Former SetCriterion semantics). */
export function layerLosses(pred: MaskPrediction, targets: ImageTargets[], points: PointSource, o: MaskCriterionOptions): LayerLosses {
  const N = pred.classLogits.shape[0];
  const Q = pred.classLogits.shape[1];
  const C = o.numClasses;
  const matches: MatchResult[] = [];
  for (let b = 0; b < N; b++) {
    const cl = tf.tidy(() => tf.squeeze(tf.slice(pred.classLogits, [b, 0, 0], [1, -1, -1]), [0]) as tf.Tensor2D);
    const ml = tf.tidy(() => tf.squeeze(tf.slice(pred.maskLogits, [b, 0, 0, 0], [1, -1, -1, -1]), [0]) as tf.Tensor3D);
    const pts = points.matcher(b);
    matches.push(matchImage(cl, ml, targets[b], pts, o));
    cl.dispose();
    ml.dispose();
    pts.dispose();
  }
  const numMasks = Math.max(1, targets.reduce((s, t) => s + t.classes.length, 0));
  // classification: matched queries get their target class, the rest "no object" (index C)
  const tgtClasses = new Int32Array(N * Q).fill(C);
  matches.forEach((m, b) => m.queries.forEach((q, k) => (tgtClasses[b * Q + q] = targets[b].classes[m.targets[k]])));
  const loss_ce = tf.tidy(() => {
    const logp = tf.logSoftmax(tf.reshape(pred.classLogits, [N * Q, C + 1]));
    const onehot = tf.oneHot(tf.tensor1d(tgtClasses, 'int32'), C + 1);
    const nll = tf.neg(tf.sum(tf.mul(logp, onehot), -1));
    const w = new Float32Array(N * Q);
    let wsum = 0;
    for (let i = 0; i < w.length; i++) wsum += w[i] = tgtClasses[i] === C ? o.noObjectWeight : 1;
    return tf.div(tf.sum(tf.mul(nll, tf.tensor1d(w))), wsum) as tf.Scalar;
  });
  const matched = matches.reduce((s, m) => s + m.queries.length, 0);
  if (matched === 0) {
    return { loss_ce, loss_mask: tf.scalar(0), loss_dice: tf.scalar(0), matches };
  }
  // matched predicted masks [M, h, w, 1] and their target masks [M, H, W, 1]
  const [src, tgt] = tf.tidy(() => {
    const srcs: tf.Tensor[] = [];
    const tgts: tf.Tensor[] = [];
    matches.forEach((m, b) => {
      if (!m.queries.length) return;
      const img = tf.squeeze(tf.slice(pred.maskLogits, [b, 0, 0, 0], [1, -1, -1, -1]), [0]); // [h, w, Q]
      srcs.push(tf.expandDims(tf.transpose(tf.gather(img, tf.tensor1d(m.queries, 'int32'), 2), [2, 0, 1]), 3));
      tgts.push(tf.expandDims(tf.gather(targets[b].masks as tf.Tensor3D, tf.tensor1d(m.targets, 'int32'), 0), 3));
    });
    return [tf.concat(srcs, 0) as tf.Tensor4D, tf.concat(tgts, 0) as tf.Tensor4D];
  });
  const coords = points.loss(src); // chosen without gradient (reads values only)
  const [loss_mask, loss_dice] = tf.tidy(() => {
    const M = src.shape[0];
    const P = coords.shape[1];
    const logits = tf.reshape(pointSample(src, coords), [M, P]);
    const labels = tf.reshape(pointSample(tgt, coords), [M, P]);
    const lm = tf.div(tf.sum(tf.mean(bceWithLogits(logits, labels), 1)), numMasks) as tf.Scalar;
    const sig = tf.sigmoid(logits);
    const num = tf.mul(2, tf.sum(tf.mul(sig, labels), 1));
    const den = tf.add(tf.sum(sig, 1), tf.sum(labels, 1));
    const ld = tf.div(tf.sum(tf.sub(1, tf.div(tf.add(num, 1), tf.add(den, 1)))), numMasks) as tf.Scalar;
    return [lm, ld];
  });
  src.dispose();
  tgt.dispose();
  coords.dispose();
  return { loss_ce, loss_mask, loss_dice, matches };
}

/** Mask2Former's SetCriterion: Hungarian matching, weighted CE / point BCE / point dice, deep supervision. */
export class MaskClassificationLoss implements SegLoss {
  readonly type = 'mask2former';
  constructor(readonly o: MaskCriterionOptions) {}

  compute(output: HeadOutput, targets: SegTargets, rng: Rng, points?: (layer: number) => PointSource): LossResult {
    if (output.kind !== 'mask-classification') throw new Error(`loss/mask2former needs a mask-classification head output, got ${output.kind}`);
    const tg = maskTargets(targets, this.o.numClasses);
    try {
      const layers = [output.final, ...(this.o.deepSupervision ? output.aux : [])];
      const terms: Record<string, tf.Scalar> = {};
      layers.forEach((pred, i) => {
        const src = points ? points(i) : rngPoints(rng.fork('layer', i), this.o);
        const l = layerLosses(pred, tg, src, this.o);
        const suffix = i === 0 ? '' : `_aux${i - 1}`;
        terms[`loss_ce${suffix}`] = scaleAndDispose(l.loss_ce, this.o.classWeight);
        terms[`loss_mask${suffix}`] = scaleAndDispose(l.loss_mask, this.o.maskWeight);
        terms[`loss_dice${suffix}`] = scaleAndDispose(l.loss_dice, this.o.diceWeight);
      });
      const total = tf.addN(Object.values(terms)) as tf.Scalar;
      return { total, terms };
    } finally {
      disposeTargets(tg);
    }
  }
}

function scaleAndDispose(x: tf.Scalar, w: number): tf.Scalar {
  const y = tf.mul(x, w) as tf.Scalar;
  x.dispose();
  return y;
}
