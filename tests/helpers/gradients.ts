/** Gradient preconditions of the training tests: a missing gradient is a failure, never a skip. */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Assert that every kernel in `kernels` has a registered gradient (useBackend registers tfjs's
 * and the engine's). These tests used to skip themselves when one was missing, which turned a
 * lost gradient into a silent skip.
 */
export function assertGradientsRegistered(kernels: readonly string[]): void {
  const missing = kernels.filter((k) => tf.getGradient(k) === undefined);
  assert.deepEqual(missing, [], `no gradient registered for ${missing.join(', ')}`);
}
