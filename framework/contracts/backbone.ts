import type * as tf from '@tensorflow/tfjs-core';

/**
 * What backbones (UNet, VAE, text encoder, ...) expose to the rest of the framework:
 * parameters by their reference (diffusers/transformers) names, and the layers adapters
 * may wrap. Implementations live in registry/backbones; this file holds only the shapes.
 */

/** A hook an adapter installs on a layer: the extra output it adds for input `x` (null: nothing now). */
export interface LayerDelta {
  delta(x: tf.Tensor): tf.Tensor | null;
}

/**
 * A layer an adapter can wrap. Linear weights are [in, out]; conv weights are HWIO
 * (tfjs layouts); activations are NHWC.
 */
export interface TargetableLayer {
  /** Module name as in the reference state_dict (`down_blocks.0.attentions.0.proj_in`). */
  readonly path: string;
  readonly kind: 'linear' | 'conv';
  readonly weight: tf.Variable;
  /** Extra outputs added after the base layer (LoRA deltas), in order. */
  readonly deltas: LayerDelta[];
  /** Conv only: stride and symmetric padding of the base conv. */
  readonly stride?: number;
  readonly padding?: number;
}

/** Parameters of a backbone by reference name. */
export interface ParameterHolder {
  readonly params: ReadonlyMap<string, { readonly variable: tf.Variable }>;
  /** Layers adapters may target, by module name. */
  readonly modules: ReadonlyMap<string, TargetableLayer>;
}

/** The object a `backbone/*` plugin builds. */
export interface Backbone {
  /** Plugin name (`unet2d-condition`, `autoencoder-kl`, `clip-text`, ...). */
  readonly type: string;
  readonly store: ParameterHolder;
  dispose(): void;
}
