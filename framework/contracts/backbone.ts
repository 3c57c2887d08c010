import type * as tf from '@tensorflow/tfjs-core';

/**
 * What backbones (UNet, VAE, text encoder, ...) expose to the rest of the framework:
 * parameters by their reference (diffusers/transformers) names, and the layers adapters
 * may wrap. Implementations live in registry/backbones; this file holds only the shapes.
 */

/** A hook an adapter installs on a layer: the extra output it adds for input `x` (null: nothing now). */
export interface LayerDelta {
  delta(x: tf.Tensor): tf.Tensor | null;
  /**
   * The variables `delta` trains (LoRA's A and B). A checkpointed block (backbone option
   * `checkpoint: blocks`) recomputes its forward in the backward pass and passes gradients
   * only to these and the backbone's trainable parameters.
   */
  trainableVariables?(): readonly tf.Variable[];
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
  /** Names of parameters marked trainable by the backbone's `trainable` option (e.g. `conv_in.weight`). */
  readonly trainable?: ReadonlySet<string>;
}

/** The object a `backbone/*` plugin builds. */
export interface Backbone {
  /** Plugin name (`unet2d-condition`, `autoencoder-kl`, `clip-text`, ...). */
  readonly type: string;
  readonly store: ParameterHolder;
  /**
   * Write this component into the diffusers pipeline folder `root` (its sub-folder: config.json
   * plus a safetensors file under the reference names and torch layouts; a text encoder also
   * writes `tokenizer/`), so the `path` option and the reference libraries load it back.
   * `config` overrides keys of the written config.json (e.g. a VAE's measured `scaling_factor`).
   * Returns the model_index.json entries it wrote (component -> [library, class]).
   * Optional: a backbone without a reference layout does not implement it.
   */
  savePretrained?(root: string, opts?: { config?: Readonly<Record<string, unknown>> }): Record<string, [string, string]>;
  dispose(): void;
}

/** What a forward pass may record besides its output (see registry/backbones/sd/taps.ts). */
export interface TapOptions {
  /** Named block outputs to return, e.g. `up_blocks.0`, `encoder.down_blocks.1`. Unknown names are errors. */
  taps?: readonly string[];
  /** Attention probabilities of layers whose name fully matches a regex; `mean` averages heads. */
  captureAttention?: { layers: readonly (string | RegExp)[]; mode?: 'mean' | 'per-head' };
}

/**
 * Recorded tensors are kept outside the forward's tidy scope and owned by the caller
 * (dispose them). Attention maps: [B, Nq, Nk] (mean) or [B, heads, Nq, Nk] (per-head).
 */
export interface TapResult {
  features: Map<string, tf.Tensor>;
  attention: Map<string, tf.Tensor>;
}

/** `backbone/unet2d-condition`: NHWC latents, timesteps, text context [B, tokens, dim]. */
export interface ConditionalUNet extends Backbone {
  forward(sample: tf.Tensor4D, timesteps: tf.Tensor1D | number, context: tf.Tensor3D, opts?: TapOptions): TapResult & { sample: tf.Tensor4D };
  /** The same forward as plain ops (no tidy, no recording): for use inside gradient functions. */
  run(sample: tf.Tensor4D, timesteps: tf.Tensor1D | number, context: tf.Tensor3D): tf.Tensor4D;
  /**
   * Plain-ops forward that also records taps/attention, for losses on features or attention
   * maps inside a gradient function (gradients flow through them). The recorded tensors are
   * kept: dispose them after the step.
   */
  runWithTaps(sample: tf.Tensor4D, timesteps: tf.Tensor1D | number, context: tf.Tensor3D, opts: TapOptions): TapResult & { sample: tf.Tensor4D };
  tapNames(): string[];
}

/** `backbone/autoencoder-kl`: NHWC images in [-1, 1] <-> unscaled latents. */
export interface LatentAutoencoder extends Backbone {
  readonly scalingFactor: number;
  encode(x: tf.Tensor4D, opts?: TapOptions): { mean: tf.Tensor4D; logvar: tf.Tensor4D; features: Map<string, tf.Tensor> };
  decode(z: tf.Tensor4D, opts?: TapOptions): { sample: tf.Tensor4D; features: Map<string, tf.Tensor> };
  runEncode(x: tf.Tensor4D): { mean: tf.Tensor4D; logvar: tf.Tensor4D };
  /** Plain-ops encode that also records taps (kept tensors the caller disposes); for use inside gradient functions. */
  runEncodeWithTaps(x: tf.Tensor4D, opts: TapOptions): { mean: tf.Tensor4D; logvar: tf.Tensor4D; features: Map<string, tf.Tensor> };
  runDecode(z: tf.Tensor4D): tf.Tensor4D;
  /** Plain-ops decode that also records taps (kept tensors the caller disposes); for use inside gradient functions. */
  runDecodeWithTaps(z: tf.Tensor4D, opts: TapOptions): { sample: tf.Tensor4D; features: Map<string, tf.Tensor> };
  tapNames(): string[];
}

/** `backbone/clip-text`: prompts -> [B, tokens, hidden] (tokenised and padded to the max length). */
export interface PromptEncoder extends Backbone {
  encodeText(texts: readonly string[]): tf.Tensor3D;
  /**
   * The prompt `phrases.join(', ')` and, per phrase, the positions of its tokens in the encoded
   * prompt (position 0 is the start token); a phrase cut off by the length limit has the
   * positions that remain (possibly none).
   */
  promptTokens(phrases: readonly string[]): { prompt: string; spans: number[][] };
}

/**
 * `backbone/one-step`: an OSEDiff-style one-step restorer built from a VAE, a UNet and a text
 * encoder. LQ image -> VAE encoder (posterior mean x scaling factor) -> UNet at a fixed
 * timestep with the prompt embedding -> x0 from the prediction (one DDPM step t -> 0) ->
 * VAE decoder. Images NHWC in [-1, 1]. Adapters attach to `unet.store` (so a saved SCR
 * adapter loads with peft onto the diffusers UNet).
 */
export interface OneStepRestorer extends Backbone {
  readonly unet: ConditionalUNet;
  readonly vae: LatentAutoencoder;
  readonly textEncoder: PromptEncoder;
  readonly timestep: number;
  readonly predictionType: 'epsilon' | 'v_prediction' | 'sample';
  /**
   * Plain ops (call inside tf.tidy or a gradient function). `context`: [B or 1, tokens, dim].
   * With `opts`, the UNet's taps and attention maps are recorded (kept tensors the caller disposes).
   */
  run(lq: tf.Tensor4D, context: tf.Tensor3D, opts?: TapOptions): TapResult & { image: tf.Tensor4D };
  /**
   * The feature pass of a segmentation backbone (RASS): the same encode -> UNet path, returning
   * the requested taps by prefixed name (`vae.encoder.down_blocks.1`, `unet.up_blocks.0`,
   * `vae.decoder.up_blocks.2`); the VAE decoder runs only when one of its taps is asked for.
   * Plain ops; the returned tensors are kept (the caller disposes them). Unknown names: a UserError.
   */
  features(lq: tf.Tensor4D, context: tf.Tensor3D, taps: readonly string[]): Map<string, tf.Tensor>;
  /** Every tap name `features` accepts. */
  tapNames(): string[];
}
