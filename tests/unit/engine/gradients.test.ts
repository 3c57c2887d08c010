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

/** Padded position i of an axis of length n, with `before` pixels of padding, as a source index (numpy's reflect / symmetric). */
function mirrorSource(i: number, n: number, before: number, mode: 'reflect' | 'symmetric'): number {
  let j = i - before;
  const off = mode === 'reflect' ? 1 : 0;
  if (j < 0) j = -j - 1 + off;
  if (j > n - 1) j = 2 * n - 1 - j - off;
  return j;
}

test('mirrorPad gradient folds the padded borders back onto the pixels they copy (reflect and symmetric)', async () => {
  await useBackend('cpu');
  const [h, w] = [5, 6];
  const pads: [number, number][] = [[0, 0], [2, 1], [3, 2], [0, 0]];
  for (const mode of ['reflect', 'symmetric'] as const) {
    const ph = h + 3;
    const pw = w + 5;
    // weights on the padded output; the gradient of sum(wt * pad(x)) is the adjoint of the pad
    const wt = Float32Array.from({ length: ph * pw }, (_, i) => Math.sin(1.3 * i + 0.2));
    const expected = new Float64Array(h * w);
    for (let y = 0; y < ph; y++) for (let x = 0; x < pw; x++) expected[mirrorSource(y, h, 2, mode) * w + mirrorSource(x, w, 3, mode)] += wt[y * pw + x];
    const xs = tf.tensor4d(Float32Array.from({ length: h * w }, (_, i) => i / 10), [1, h, w, 1]);
    const wts = tf.tensor4d(wt, [1, ph, pw, 1]);
    // forward check of the index rule against tfjs itself, so the expected adjoint is the right one
    const fwd = tf.mirrorPad(xs, pads, mode).dataSync();
    for (let y = 0; y < ph; y++) for (let x = 0; x < pw; x++) assert.equal(fwd[y * pw + x], Math.fround((mirrorSource(y, h, 2, mode) * w + mirrorSource(x, w, 3, mode)) / 10));
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(wts, tf.mirrorPad(a as tf.Tensor4D, pads, mode))))(xs).dataSync();
    for (let i = 0; i < h * w; i++) assert.ok(Math.abs(g[i] - expected[i]) < 1e-5, `${mode}: dL/dx[${i}] ${g[i]} vs ${expected[i]}`);
    tf.dispose([xs, wts]);
  }
});
