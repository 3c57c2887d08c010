import type * as tf from '@tensorflow/tfjs-core';
import type { ParameterHolder } from './backbone.js';

/** The object an `adapter/*` plugin builds: something that attaches trainable weights to a backbone. */
export interface Adapter {
  readonly type: string;
  /** Install into `target` (wrapping the layers its config selects). */
  attach(target: ParameterHolder): void;
  /** The variables a training step should update. */
  trainableVariables(): tf.Variable[];
  dispose(): void;
}
