/**
 * What `degradation/*` plugins build: an op (or a pipeline of ops) that turns a batch of clean
 * images into degraded ones. Images are NHWC float32 RGB in [0, 1] (tfjs-native layout).
 *
 * Randomness: every random parameter is drawn from the sample's own stream `ctx.rng[i]`
 * (the runner derives it as `Rng.derive(seed, 'degradation', sampleIndex)`), so one sample's
 * result never depends on which other samples share its batch, on the worker, or on the run.
 * Ops fork a child stream per stage id, so adding a stage does not shift another stage's draws.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../engine/rng.js';

export interface DegradationContext {
  /** One stream per sample of the batch. */
  readonly rng: readonly Rng[];
  /** When given: one object per sample; ops write their sampled parameters under their stage id. */
  readonly record?: Record<string, unknown>[];
  /**
   * Size of the pipeline's input and the pipeline's scale (1 or 4): resize stages compute
   * targets from it ("back to the input size / scale"). Set by the pipeline; ops used
   * standalone fall back to the batch's own size and scale 1.
   */
  readonly origin?: { readonly height: number; readonly width: number; readonly scale: number };
}

export interface Degradation {
  /** The stage id (used for the per-stage random stream and the record key). */
  readonly id: string;
  /**
   * Degrade `batch`. Never disposes `batch`; returns a new tensor, or `batch` itself when
   * nothing was done to any sample (callers dispose their input only if the result differs).
   */
  apply(batch: tf.Tensor4D, ctx: DegradationContext): Promise<tf.Tensor4D>;
}
