import * as tf from '@tensorflow/tfjs-core';
import { helperResult, helperState, hostThreads, sharedHelper } from '../../../framework/api.js';
import type { HeadOutput, LossResult, MaskPrediction, PreparedSegLoss, Rng, SegLoss, SegTargets, SyncWorker } from '../../../framework/api.js';
import { pointSample } from '../../heads/common/sampling.js';
import type { PlanJob } from './plan-worker.js';
import { planLayerHost, rngHostPoints, uncertainPointsHost, type HostLayerPlan, type HostPoints, type LayerValues, type MaskCriterionOptions, type MatchResult } from './host-plan.js';
import { maskTargets, type ImageTargets } from './targets.js';

export { MASK2FORMER_LOSS_DEFAULTS, matchImage, mostUncertainFirst, paddedRows, planLayerHost, uncertainPointsHost } from './host-plan.js';
export type { HostLayerPlan, HostPoints, LayerValues, MaskCriterionOptions, MatchResult } from './host-plan.js';

/**
 * Mask2Former's get_uncertain_point_coords_with_randomness: draw oversample*P random points,
 * keep the importance*P whose logits are closest to 0 (most uncertain), fill up with fresh
 * random points. logits: [M, h, w, 1]; returns [M, P, 2] (no gradient flows through it).
 */
export function uncertainPoints(logits: tf.Tensor4D, rng: Rng, numPoints: number, oversample: number, importance: number): tf.Tensor3D {
  const [M, h, w] = logits.shape;
  return tf.tensor3d(uncertainPointsHost(logits.dataSync() as Float32Array, M, h, w, rng, numPoints, oversample, importance), [M, numPoints, 2]);
}

/** Sigmoid BCE with logits, elementwise: max(x,0) - x*t + log(1 + exp(-|x|)). */
function bceWithLogits(x: tf.Tensor, t: tf.Tensor): tf.Tensor {
  return tf.add(tf.sub(tf.relu(x), tf.mul(x, t)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
}

/**
 * Points to use for one prediction layer; tests inject fixed ones, training draws from the rng.
 * The optional host forms give the same points as plain arrays (the planner works on host
 * values): they spare a device round trip per image and layer, several per step.
 */
export interface PointSource {
  matcher(batchIndex: number): tf.Tensor2D;
  loss(maskLogits: tf.Tensor4D): tf.Tensor3D;
  /** matcher's points [count, 2] as values */
  matcherHost?(batchIndex: number): Float32Array;
  /** loss's points for host logits [M, h, w]: M * count * 2 values */
  lossHost?(maskLogits: Float32Array, M: number, h: number, w: number): Float32Array;
}

/** Training's points: uniform (x, y) in [0, 1]^2 for the matcher, uncertainty-sampled for the loss, both from `rng`. */
export function rngPoints(rng: Rng, o: MaskCriterionOptions): PointSource {
  const host = rngHostPoints(rng, o);
  return {
    matcher: (b) => tf.tensor2d(host.matcher(b), [o.numPoints, 2]),
    loss: (m) => uncertainPoints(m, rng, o.numPoints, o.oversampleRatio, o.importanceSampleRatio),
    matcherHost: host.matcher,
    lossHost: host.loss,
  };
}

export interface LayerLosses {
  loss_ce: tf.Scalar;
  loss_mask: tf.Scalar;
  loss_dice: tf.Scalar;
  matches: MatchResult[];
}

/** The host forms of a point source (tensor forms read back where it has none). */
export function hostPoints(points: PointSource): HostPoints {
  return {
    matcher: (b) => {
      if (points.matcherHost) return points.matcherHost(b);
      const pts = points.matcher(b);
      const data = pts.dataSync() as Float32Array;
      pts.dispose();
      return data;
    },
    loss: (m, M, h, w) => {
      if (points.lossHost) return points.lossHost(m, M, h, w);
      const srcT = tf.tensor4d(m, [M, h, w, 1]);
      const real = points.loss(srcT);
      srcT.dispose();
      const data = real.dataSync() as Float32Array;
      real.dispose();
      return data;
    },
  };
}

/** One prediction layer's values, read once from the forward pass's tensors. */
export function layerValues(pred: MaskPrediction): LayerValues {
  const [N, Q, C1] = pred.classLogits.shape;
  const [, h, w] = pred.maskLogits.shape;
  return { classLogits: pred.classLogits.dataSync() as Float32Array, maskLogits: pred.maskLogits.dataSync() as Float32Array, N, Q, C1, h, w };
}

/** A host plan's arrays as the tensors `layerTerms` reads. */
export function planTensors(p: HostLayerPlan, N: number, Q: number, numClasses: number): Record<string, tf.Tensor> {
  return {
    onehot: tf.tensor2d(p.onehot, [N * Q, numClasses + 1]),
    clsW: tf.tensor1d(p.clsW),
    src: tf.tensor1d(p.src, 'int32'),
    coords: tf.tensor3d(p.coords, [p.R, p.P, 2]),
    labels: tf.tensor2d(p.labels, [p.R, p.P]),
    rows: tf.tensor1d(p.rows),
  };
}

/** One prediction layer's plan (`planLayerHost`) on the values of a forward pass, as tensors. */
export function planLayer(pred: MaskPrediction, targets: ImageTargets[], points: PointSource, o: MaskCriterionOptions): { tensors: Record<string, tf.Tensor>; matches: MatchResult[] } {
  const v = layerValues(pred);
  const p = planLayerHost(v, targets, hostPoints(points), o);
  return { matches: p.matches, tensors: planTensors(p, v.N, v.Q, o.numClasses) };
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
/** The criterion's helper-thread module. */
const PLAN_WORKER = new URL('./plan-worker.js', import.meta.url);
const PLAN_LABEL = 'loss/mask2former host plan';

/** Whether the host plan's helper thread runs ('running'), has not been needed yet, or is unavailable. */
export function planHelperState(): string {
  return helperState(PLAN_WORKER);
}

export class MaskClassificationLoss implements SegLoss {
  readonly type = 'mask2former';
  /**
   * @param planThreads threads for the host plan: 1 keeps it on the main thread, 2 splits the
   * layers with a helper thread; default: 2 where `hostThreads()` allows it.
   */
  constructor(
    readonly o: MaskCriterionOptions,
    private readonly planThreads?: 1 | 2,
  ) {}

  private layers(output: HeadOutput): MaskPrediction[] {
    if (output.kind !== 'mask-classification') throw new Error(`loss/mask2former needs a mask-classification head output, got ${output.kind}`);
    return [output.final, ...(this.o.deepSupervision ? output.aux : [])];
  }

  prepare(output: HeadOutput, targets: SegTargets, rng: Rng, points?: (layer: number) => PointSource): PreparedSegLoss {
    const layers = this.layers(output);
    const tg = maskTargets(targets, this.o.numClasses);
    const out: PreparedSegLoss = { numMasks: tf.scalar(Math.max(1, tg.reduce((s, t) => s + t.classes.length, 0))) };
    const values = layers.map(layerValues);
    const streams = layers.map((_, i) => rng.fork('layer', i));
    // training's points (no injected source): the later layers go to the helper thread while
    // this one plans the first ones; each layer's plan depends only on its values and its own
    // stream, so the split changes nothing in the result
    const helper = points || layers.length < 2 ? null : this.helper();
    const split = helper ? Math.ceil(layers.length / 2) : layers.length;
    if (helper) {
      const job: PlanJob = { layers: values.slice(split).map((v, j) => ({ values: v, rng: { keys: streams[split + j]!.keys, state: streams[split + j]!.getState() } })), targets: tg, o: this.o };
      helper.post(job);
    }
    const here = (i: number) => planLayerHost(values[i]!, tg, hostPoints(points ? points(i) : rngPoints(streams[i]!, this.o)), this.o);
    const plans = values.slice(0, split).map((_, i) => here(i));
    if (helper) {
      const theirs = helperResult(helper, PLAN_WORKER, PLAN_LABEL);
      // a helper that failed: its layers planned here (their streams are untouched), and no helper from now on
      if (theirs) plans.push(...theirs);
      else for (let i = split; i < layers.length; i++) plans.push(here(i));
    }
    plans.forEach((p, i) => {
      for (const [k, t] of Object.entries(planTensors(p, values[i]!.N, values[i]!.Q, this.o.numClasses))) out[`l${i}/${k}`] = t;
    });
    return out;
  }

  /** The helper thread for `prepare` where host work may use two threads (`planThreads`, default `hostThreads()`). */
  private helper(): SyncWorker<PlanJob, HostLayerPlan[]> | null {
    return sharedHelper<PlanJob, HostLayerPlan[]>(PLAN_WORKER, PLAN_LABEL, this.planThreads ?? hostThreads());
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
