import type * as tf from '@tensorflow/tfjs-core';
import type { ParameterHolder } from './backbone.js';

/** The object an `adapter/*` plugin builds: something that attaches trainable weights to a backbone. */
export interface Adapter {
  readonly type: string;
  /** The adapter's name (PEFT's adapter name, e.g. `scr`, `seg`); several can share a backbone. */
  readonly name: string;
  /** Install into `target` (wrapping the layers its config selects). */
  attach(target: ParameterHolder): void;
  /** The variables a training step should update. */
  trainableVariables(): tf.Variable[];
  /**
   * The same variables under names that stay the same from run to run (optimiser slots and
   * checkpoints are keyed by them; tfjs variable names carry a per-process serial).
   */
  namedVariables(): Record<string, tf.Variable>;
  /** Training mode (dropout active) or inference. */
  setTraining(on: boolean): void;
  /**
   * Write the adapter in its interchange format into `dir` (LoRA: PEFT's adapter_config.json +
   * adapter_model.safetensors). `modulesToSave`: backbone modules trained outside the adapter
   * (e.g. conv_in) to store with it whole (PEFT's modules_to_save); loading the adapter restores them.
   */
  save(dir: string, opts?: { modulesToSave?: readonly string[] }): void;
  /** Fold the adapter into the base weights and remove it; its effect stays (PEFT's merge_and_unload). */
  mergeAndUnload(): void;
  dispose(): void;
}
