import * as tf from '@tensorflow/tfjs-core';
import { recordingStep } from './compile.js';

/**
 * A scalar 1 computed from the first element of an incoming gradient (0 when that element is
 * NaN, where the gradients are NaN anyway), for a backward pass that recomputes part of the
 * forward (memory-efficient attention's probabilities, a checkpointed block) to multiply the
 * recomputation's inputs by.
 *
 * Eagerly that changes nothing (x * 1 is x), so outside a compiled step's recording there is no
 * gate: null, and the caller uses its inputs as they are (seven ops fewer per recomputation,
 * ~50 recomputations per UNet step). In a compiled step (one TensorFlow graph) it is
 * what makes the recomputation save memory at all. Without it the recomputed ops are the same
 * expressions as the forward's: Grappler's common-subexpression pass merges the two, and the
 * executor would anyway run them as soon as their inputs exist, early in the forward, so what
 * the recomputation was meant to rebuild late lives from the forward to the backward. Gated, it
 * is a new expression that can only run once its gradient has arrived.
 */
export function recomputeGate(dy: tf.Tensor): tf.Scalar | null {
  if (!recordingStep()) return null;
  return tf.tidy(() => {
    const first = tf.reshape(tf.slice(tf.reshape(dy, [-1]), [0], [1]), []);
    return tf.cast(tf.logicalNot(tf.isNaN(first)), 'float32') as tf.Scalar;
  });
}
