/**
 * What the restoration losses (`loss/l1`, `loss/mse`, `loss/ssim`, `loss/lpips`) share: the input
 * check, the `weight` option and the one-term result. `loss/weighted-sum` composes any of them.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImageLoss, LossResult } from '../../../framework/api.js';

/** The `weight` option every single restoration loss has (weighted-sum sets its own on top). */
export const weightProperty = {
  weight: { type: 'number', minimum: 0, default: 1, description: 'factor applied to the loss value (and its reported term)' },
} as const;

/** pred and target must be NHWC with the same shape (a wiring bug otherwise, not user input). */
export function checkPair(type: string, pred: tf.Tensor4D, target: tf.Tensor4D): void {
  if (pred.rank !== 4 || target.rank !== 4 || pred.shape.join() !== target.shape.join()) {
    throw new RangeError(`loss/${type}: prediction ${JSON.stringify(pred.shape)} and target ${JSON.stringify(target.shape)} must be NHWC tensors of one shape`);
  }
}

/** A loss with a single term `name` = weight * value. */
export function singleTerm(name: string, value: tf.Scalar, weight: number): LossResult {
  const total = weight === 1 ? value : (tf.mul(value, weight) as tf.Scalar);
  return { total, terms: { [name]: total } };
}

/** An ImageLoss from a function of (pred, target) giving the unweighted scalar. */
export function imageLoss(type: string, weight: number, value: (pred: tf.Tensor4D, target: tf.Tensor4D) => tf.Scalar): ImageLoss {
  return {
    type,
    compute(pred, target) {
      checkPair(type, pred, target);
      return singleTerm(type, value(pred, target), weight);
    },
  };
}
