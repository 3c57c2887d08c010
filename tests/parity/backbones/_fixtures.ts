import * as tf from '@tensorflow/tfjs-core';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readSafetensors, toFloat32 } from '../../../framework/engine/safetensors.js';

export const FIXTURES = join(process.cwd(), 'tests', 'fixtures', 'backbones');
export const TINY_SD = join(FIXTURES, 'tiny-sd');

let io: Map<string, tf.Tensor> | null = null;

/** Fixture tensors from io.safetensors (kept for the whole test file; tiny). */
export function fixture(name: string): tf.Tensor {
  if (!io) {
    io = new Map();
    for (const [k, e] of readSafetensors(join(FIXTURES, 'io.safetensors')).tensors) io.set(k, tf.keep(tf.tensor(toFloat32(e), e.shape)));
  }
  const t = io.get(name);
  if (!t) throw new Error(`fixture io.safetensors has no ${name}`);
  return t;
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape, 'shape mismatch');
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number);
}

export function assertClose(a: tf.Tensor, b: tf.Tensor, tol: number, what: string): void {
  const d = maxAbsDiff(a, b);
  assert.ok(d <= tol, `${what}: max abs diff ${d.toExponential(3)} > ${tol}`);
}
