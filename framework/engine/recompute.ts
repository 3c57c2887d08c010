import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op.js';
import { recomputeGate } from './recompute-gate.js';

/**
 * Activation checkpointing: `recomputed(fn, inputs, params)` returns fn(...inputs) while
 * keeping nothing of fn's inside for the backward pass (only its inputs); the backward
 * reruns fn under a gradient tape and backpropagates the incoming gradient through it.
 *
 * Gradients reach `inputs` and `params` only. fn's other variables (frozen weights) are
 * constants here: a checkpointed block passes the variables being trained (adapter weights,
 * parameters marked trainable). fn must be deterministic (no dropout drawing new masks),
 * since the recomputation has to reproduce the forward exactly.
 */
export function recomputed(fn: (...inputs: tf.Tensor[]) => tf.Tensor, inputs: readonly tf.Tensor[], params: readonly tf.Variable[]): tf.Tensor {
  const n = inputs.length;
  const kernel = customOp((args, save) => {
    const ins = args.slice(0, n);
    // runs with the tape off (inside a custom-gradient kernel): nothing of fn is kept
    const value = fn(...ins);
    save(ins);
    return { value, gradFunc: (dy, saved) => recomputeGrads(fn, saved, params, dy) };
  });
  return kernel(...inputs, ...params);
}

interface EngineTapeState {
  state: { activeTape: unknown; gradientDepth: number };
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): { value: tf.Tensor; grads: (tf.Tensor | undefined)[] };
}

function recomputeGrads(fn: (...inputs: tf.Tensor[]) => tf.Tensor, saved: tf.Tensor[], params: readonly tf.Variable[], dy: tf.Tensor): tf.Tensor[] {
  const engine = tf.engine() as unknown as EngineTapeState;
  // We run inside the outer backward pass. tfjs' gradients() starts a fresh tape when no
  // gradient is being recorded and clears the engine's tape when it ends, which would drop
  // the outer pass's tape (it disposes the tensors saved on it afterwards): keep and restore it.
  const outer = engine.state.activeTape;
  try {
    return tf.tidy(() => {
      const xs = [...saved, ...params];
      // gated on dy, so a compiled step recomputes here instead of sharing the forward's values
      // (recompute-gate.ts; none in eager steps); the gate is exactly 1, and so is its factor in the gradients
      const gate = recomputeGate(dy);
      const { value, grads } = engine.gradients(() => fn(...saved.map((s) => (gate && s.dtype === 'float32' ? tf.mul(s, gate) : s))), xs, dy, true);
      value.dispose();
      return grads.map((g, i) => g ?? tf.zerosLike(xs[i] as tf.Tensor));
    });
  } finally {
    engine.state.activeTape = outer;
  }
}
