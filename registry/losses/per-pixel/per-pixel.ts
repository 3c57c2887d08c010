import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../../framework/api.js';
import type { HeadOutput } from '../../../framework/api.js';
import type { LossResult, PreparedSegLoss, SegLoss, SegTargets } from '../../../framework/api.js';

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

  /** The labels as tensors: one-hot [N, H, W, C] (zero rows for ignored pixels), the row mask and the labelled count. */
  prepare(output: HeadOutput, targets: SegTargets): PreparedSegLoss {
    if (output.kind !== 'per-pixel') throw new Error(`loss/per-pixel needs a per-pixel head output, got ${output.kind}`);
    const { batch: N, height: H, width: W, labels, ignoreIndex } = targets;
    const C = this.o.numClasses;
    const valid = new Float32Array(N * H * W);
    const onehot = new Float32Array(N * H * W * C);
    let count = 0;
    for (let i = 0; i < labels.length; i++) {
      const v = labels[i] as number;
      if (v === ignoreIndex) continue;
      if (v >= C) throw new RangeError(`per-pixel loss: label ${v} >= numClasses ${C}`);
      valid[i] = 1;
      onehot[i * C + v] = 1;
      count++;
    }
    return { onehot: tf.tensor4d(onehot, [N, H, W, C]), mask: tf.tensor2d(valid, [N * H * W, 1]), count: tf.scalar(Math.max(count, 1)) };
  }

  computePrepared(output: HeadOutput, prepared: PreparedSegLoss): LossResult {
    if (output.kind !== 'per-pixel') throw new Error(`loss/per-pixel needs a per-pixel head output, got ${output.kind}`);
    const [N, H, W, C] = (prepared.onehot as tf.Tensor4D).shape;
    const logits = output.logits;
    const terms = tf.tidy(() => {
      const onehot = tf.reshape(prepared.onehot as tf.Tensor, [N * H * W, C]);
      const mask = prepared.mask as tf.Tensor2D;
      const up = logits.shape[1] !== H || logits.shape[2] !== W ? tf.image.resizeBilinear(logits, [H, W], false, true) : logits;
      const flat = tf.reshape(up, [N * H * W, C]);
      const out: Record<string, tf.Scalar> = {};
      if (this.o.ceWeight) {
        const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(flat), onehot)));
        out.loss_ce = tf.mul(tf.div(nll, prepared.count as tf.Scalar), this.o.ceWeight) as tf.Scalar;
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

  compute(output: HeadOutput, targets: SegTargets, _rng?: Rng): LossResult {
    const prepared = this.prepare(output, targets);
    try {
      return this.computePrepared(output, prepared);
    } finally {
      tf.dispose(Object.values(prepared));
    }
  }
}
