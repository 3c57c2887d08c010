import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';

let registered = false;

/**
 * Register tfjs's gradient functions. The Node build of @tensorflow/tfjs-core ships the ops
 * but none of their gradients (its ESM gradient modules are not loadable by Node), so
 * tf.grad / optimizers fail with "gradient function not found" until something registers
 * them. The @tensorflow/tfjs union package's Node bundle does, into the registry that every
 * copy of tfjs-core shares (it lives on the global object). Idempotent.
 */
export function ensureTfjsGradients(): void {
  if (registered || tf.getGradient('Conv2D') !== undefined) {
    registered = true;
    return;
  }
  createRequire(import.meta.url)('@tensorflow/tfjs');
  if (tf.getGradient('Conv2D') === undefined) throw new Error('registering tfjs gradients failed: Conv2D still has no gradient');
  registered = true;
}
