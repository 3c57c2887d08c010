import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../../framework/engine/backend.js';

test('useBackend registers tfjs gradients: conv2d gradient matches a finite difference', async () => {
  await useBackend('cpu');
  assert.ok(tf.getGradient('Conv2D'), 'Conv2D gradient registered');
  const x = tf.tensor4d([0.1, -0.4, 0.3, 0.8, -0.2, 0.5, 0.7, -0.9, 0.25], [1, 3, 3, 1]);
  const w = tf.tensor4d([0.2, -0.1, 0.4, 0.3], [2, 2, 1, 1]);
  const f = (w: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x, w as tf.Tensor4D, 1, 'valid'))) as tf.Scalar;
  const g = tf.grad(f)(w).dataSync();
  const wd = w.dataSync();
  const eps = 1e-3;
  for (let i = 0; i < 4; i++) {
    const p = Float32Array.from(wd);
    const m = Float32Array.from(wd);
    p[i] += eps;
    m[i] -= eps;
    const fd = (f(tf.tensor4d(p, [2, 2, 1, 1])).dataSync()[0] - f(tf.tensor4d(m, [2, 2, 1, 1])).dataSync()[0]) / (2 * eps);
    assert.ok(Math.abs(fd - g[i]) < 1e-3, `dL/dw[${i}]: analytic ${g[i]} vs finite difference ${fd}`);
  }
});
