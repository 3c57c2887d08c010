import type * as tf from '@tensorflow/tfjs-core';

/**
 * What `head/*` plugins build: a segmentation head over a multi-scale feature pyramid.
 * Activations are NHWC. Implementations live in registry/heads.
 */

/** One pyramid level: features at `stride` pixels per feature cell. */
export interface FeatureLevel {
  readonly stride: number;
  readonly features: tf.Tensor4D;
}

/** Mask-classification predictions (Mask2Former): per query a class distribution (+ no-object) and a mask. */
export interface MaskPrediction {
  /** [N, Q, numClasses + 1] logits; the last column is "no object". */
  readonly classLogits: tf.Tensor3D;
  /** [N, h, w, Q] mask logits at the mask-feature resolution (stride 4). */
  readonly maskLogits: tf.Tensor4D;
}

export type HeadOutput =
  | { readonly kind: 'per-pixel'; /** [N, h, w, numClasses] */ readonly logits: tf.Tensor4D }
  | { readonly kind: 'mask-classification'; readonly final: MaskPrediction; /** one per intermediate decoder layer (deep supervision) */ readonly aux: readonly MaskPrediction[] };

export interface SegHead {
  readonly type: string;
  readonly numClasses: number;
  /** Strides the head expects, finest first (e.g. [4, 8, 16, 32]). */
  readonly inStrides: readonly number[];
  /** Channels of each input level, finest first. */
  readonly inChannels: readonly number[];
  /** Trainable variables by reference-style name. */
  readonly params: ReadonlyMap<string, tf.Variable>;
  forward(levels: readonly FeatureLevel[], opts?: { training?: boolean }): HeadOutput;
  /** Semantic class scores [N, height, width, numClasses] (per-pixel softmax, or softmax(class) x sigmoid(mask)). */
  semantic(output: HeadOutput, height: number, width: number): tf.Tensor4D;
  dispose(): void;
}
