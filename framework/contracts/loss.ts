import type * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../engine/rng.js';
import type { HeadOutput } from './head.js';

/** Ground truth for a batch: NHW class indices (ignoreIndex = not labelled). */
export interface SegTargets {
  readonly labels: Uint8Array;
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  readonly ignoreIndex: number;
}

export interface LossResult {
  /** Weighted sum of all terms (the value to differentiate). */
  readonly total: tf.Scalar;
  /** Each weighted term by name (e.g. loss_ce, loss_mask, loss_dice, loss_ce_aux0, ...). */
  readonly terms: Readonly<Record<string, tf.Scalar>>;
}

/** What `loss/*` plugins for segmentation heads build. `rng` drives any point sampling (seeded per step). */
export interface SegLoss {
  readonly type: string;
  compute(output: HeadOutput, targets: SegTargets, rng: Rng): LossResult;
}
