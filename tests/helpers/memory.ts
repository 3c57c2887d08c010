import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';

/**
 * Memory guard for training tests: runs `step` `warmup` times (first calls may allocate
 * caches, e.g. optimiser slots), then `steps` more times, and fails if the live tensor
 * count grew during the measured steps.
 */
export async function assertTensorCountFlat(step: (i: number) => unknown | Promise<unknown>, opts: { warmup?: number; steps?: number; label?: string } = {}): Promise<void> {
  const warmup = opts.warmup ?? 1;
  const steps = opts.steps ?? 3;
  for (let i = 0; i < warmup; i++) await step(i);
  const before = tf.memory().numTensors;
  const counts: number[] = [];
  for (let i = 0; i < steps; i++) {
    await step(warmup + i);
    counts.push(tf.memory().numTensors);
  }
  assert.ok(
    counts.every((c) => c <= before),
    `${opts.label ?? 'step'} leaks tensors: ${before} live before, then ${counts.join(', ')} after successive steps`,
  );
}
