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

/** A segmentation loss's host-side plan for one batch (matches, sampled points, targets) as tensors. */
export type PreparedSegLoss = Record<string, tf.Tensor>;

/** What `loss/*` plugins for segmentation heads build. `rng` drives any point sampling (seeded per step). */
export interface SegLoss {
  readonly type: string;
  compute(output: HeadOutput, targets: SegTargets, rng: Rng): LossResult;
  /**
   * Optional compile-friendly pair. `prepare` does the work that needs values on the host
   * (Hungarian matching, uncertainty point selection, label tables) from a forward pass's
   * output and returns tensors; `computePrepared` is then pure tensor ops on the output and
   * those tensors, so a training step can run forward + loss + backward as one compiled
   * function with the plan as inputs (prepared from a separate forward pass of the same
   * weights). compute(out, t, rng) must equal computePrepared(out, prepare(out, t, rng)).
   * Every prepared tensor's shape must depend only on the batch's shapes (pad what varies),
   * or each new shape records the step again.
   */
  prepare?(output: HeadOutput, targets: SegTargets, rng: Rng): PreparedSegLoss;
  computePrepared?(output: HeadOutput, prepared: PreparedSegLoss): LossResult;
}

/**
 * What `loss/*` plugins for image restoration build (l1, mse, ssim, lpips, weighted-sum, ...).
 * `pred` and `target` are NHWC RGB in [-1, 1] (the restorer's range; a loss that needs [0, 1]
 * maps them itself). `compute` uses plain ops (no tf.tidy around its result), so it can be
 * called inside a gradient function; `total` is the value to differentiate.
 */
export interface ImageLoss {
  readonly type: string;
  compute(pred: tf.Tensor4D, target: tf.Tensor4D): LossResult;
}

/** One tag of one sample as the Semantic-Constraint Loss sees it. */
export interface AttentionTarget {
  readonly tag: string;
  /** Positions of the tag's tokens in the encoded prompt (position 0 is the start token). */
  readonly tokens: readonly number[];
  /** HW binary mask (1 = the tag's pixels) at the sample's image resolution. */
  readonly mask: Uint8Array;
}

/** The attention targets of one sample of the batch. */
export interface AttentionSample {
  readonly height: number;
  readonly width: number;
  /** Tags that matched a class (they have a mask). */
  readonly targets: readonly AttentionTarget[];
  /** Tags that matched no class: excluded from the loss, counted. */
  readonly unmatched: readonly string[];
}

/** The shape [B, Nq, Nk] of each captured attention map, by layer name (what `prepare` needs before a step runs). */
export type AttentionShapes = ReadonlyMap<string, readonly [number, number, number]>;

/** A batch's attention targets as tensors, made ahead of the step, with the counts computed in JS. */
export interface PreparedAttentionTargets {
  /** Fixed-shape tensors (the caller passes them into the step as inputs and disposes them). */
  readonly tensors: Readonly<Record<string, tf.Tensor>>;
  readonly matched: number;
  readonly unmatched: number;
}

/**
 * What losses on cross-attention maps build (`loss/scl`). `attention` maps a captured layer name
 * to its head-averaged probabilities [B, Nq, Nk]: Nq = h*w image tokens of that layer (row-major,
 * h/w = the image's aspect ratio), Nk = prompt tokens. Plain ops, callable inside a gradient function.
 */
export interface AttentionLoss {
  readonly type: string;
  /** Full-match regexes of the attention layers to capture (e.g. `.*attn2`). */
  readonly layers: readonly string[];
  compute(attention: ReadonlyMap<string, tf.Tensor>, samples: readonly AttentionSample[]): LossResult & { readonly matched: number; readonly unmatched: number };
  /**
   * Optional, for compiled training steps (engine `compileStep` bakes every tensor made from JS
   * values into the program, so per-batch targets must come in as input tensors): `prepare`
   * turns a batch's targets into tensors whose shapes depend only on the batch size, `shapes`
   * and the loss's options -- never on how many tags a sample has -- and `computePrepared` is
   * the same loss as `compute` from them, with no host reads and no tensors built from the
   * targets. A loss without the pair still works; an experiment then runs its steps eagerly.
   */
  prepare?(samples: readonly AttentionSample[], shapes: AttentionShapes): PreparedAttentionTargets;
  computePrepared?(attention: ReadonlyMap<string, tf.Tensor>, prepared: Readonly<Record<string, tf.Tensor>>): LossResult;
}
