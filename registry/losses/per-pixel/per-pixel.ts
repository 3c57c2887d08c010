import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../../framework/api.js';
import type { HeadOutput } from '../../../framework/api.js';
import type { LossResult, SegLoss, SegTargets } from '../../../framework/api.js';

export interface PerPixelLossOptions {
  numClasses: number;
  ceWeight: number;
  diceWeight: number;
  /** Dice smoothing term added to numerator and denominator. */
  smooth: number;
}

/**
 * Per-pixel losses for `fpn-seg`: logits are upsampled (bilinear, half-pixel centres) to the
 * label size as MMSegmentation does, then
 *   CE   = mean over labelled pixels of -log softmax(logits)[label]
 *   dice = mean over classes of 1 - (2 sum(p t) + s) / (sum p + sum t + s), p = softmax, t = one-hot,
 *          summed over the batch's labelled pixels (ignore pixels excluded from both).
 */
export class PerPixelLoss implements SegLoss {
  readonly type = 'per-pixel';
  constructor(readonly o: PerPixelLossOptions) {}

  compute(output: HeadOutput, targets: SegTargets, _rng?: Rng): LossResult {
    if (output.kind !== 'per-pixel') throw new Error(`loss/per-pixel needs a per-pixel head output, got ${output.kind}`);
    const { batch: N, height: H, width: W, labels, ignoreIndex } = targets;
    const C = this.o.numClasses;
    const valid = new Float32Array(N * H * W);
    const cls = new Int32Array(N * H * W);
    let count = 0;
    for (let i = 0; i < labels.length; i++) {
      const v = labels[i];
      if (v === ignoreIndex) continue;
      if (v >= C) throw new RangeError(`per-pixel loss: label ${v} >= numClasses ${C}`);
      valid[i] = 1;
      cls[i] = v;
      count++;
    }
    const terms = tf.tidy(() => {
      let logits = output.logits;
      if (logits.shape[1] !== H || logits.shape[2] !== W) logits = tf.image.resizeBilinear(logits, [H, W], false, true);
      const flat = tf.reshape(logits, [N * H * W, C]);
      const mask = tf.tensor2d(valid, [N * H * W, 1]);
      const onehot = tf.mul(tf.oneHot(tf.tensor1d(cls, 'int32'), C), mask);
      const out: Record<string, tf.Scalar> = {};
      if (this.o.ceWeight) {
        const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(flat), onehot)));
        out.loss_ce = tf.mul(tf.div(nll, Math.max(count, 1)), this.o.ceWeight) as tf.Scalar;
      }
      if (this.o.diceWeight) {
        const p = tf.mul(tf.softmax(flat), mask);
        const inter = tf.sum(tf.mul(p, onehot), 0);
        const den = tf.add(tf.sum(p, 0), tf.sum(onehot, 0));
        const dice = tf.sub(1, tf.div(tf.add(tf.mul(inter, 2), this.o.smooth), tf.add(den, this.o.smooth)));
        out.loss_dice = tf.mul(tf.mean(dice), this.o.diceWeight) as tf.Scalar;
      }
      return out;
    });
    const total = Object.keys(terms).length ? (tf.addN(Object.values(terms)) as tf.Scalar) : tf.scalar(0);
    return { total, terms };
  }
}
