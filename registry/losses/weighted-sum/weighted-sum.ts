import * as tf from '@tensorflow/tfjs-core';
import type { ImageLoss, LossResult } from '../../../framework/api.js';

export interface WeightedPart {
  readonly id: string;
  readonly weight: number;
  readonly loss: ImageLoss;
}

/**
 * total = sum_i weight_i * part_i.total. Terms: a part with one term reports it as `id`; a part
 * with several (a nested weighted-sum) reports each as `id.term`; every term is scaled by the
 * part's weight, so the terms always add up to the total.
 */
export class WeightedSumLoss implements ImageLoss {
  readonly type = 'weighted-sum';
  constructor(readonly parts: readonly WeightedPart[]) {}

  compute(pred: tf.Tensor4D, target: tf.Tensor4D): LossResult {
    const terms: Record<string, tf.Scalar> = {};
    const totals: tf.Scalar[] = [];
    for (const p of this.parts) {
      const r = p.loss.compute(pred, target);
      const scale = (t: tf.Scalar) => (p.weight === 1 ? t : (tf.mul(t, p.weight) as tf.Scalar));
      totals.push(scale(r.total));
      const names = Object.keys(r.terms);
      if (names.length === 1) terms[p.id] = scale(r.terms[names[0]]);
      else for (const n of names) terms[`${p.id}.${n}`] = scale(r.terms[n]);
    }
    const total = totals.length === 0 ? tf.scalar(0) : totals.length === 1 ? totals[0] : (tf.addN(totals) as tf.Scalar);
    return { total, terms };
  }
}
