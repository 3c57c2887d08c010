import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { nativeBackendStatus, useBackend, type BackendName } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';

/**
 * Resizing is linear in the image, so its gradient g = d/dx sum(resize(x) * dy) must satisfy
 * the adjoint identity sum(resize(x) * dy) = sum(x * g) for every x, and have x's shape. This
 * checks the gradient kernels against each backend's own forward kernel, with no reference
 * implementation involved. tfjs-backend-cpu 4.22's stock kernels fail it (nearest: batch > 1;
 * bilinear: non-square images, half-pixel centres); framework/engine/resize-grad-kernels.ts
 * replaces them.
 */
const configs: { name: string; in: [number, number, number, number]; out: [number, number]; alignCorners: boolean; halfPixel: boolean }[] = [
  { name: 'x2 up, batch 2', in: [2, 6, 6, 3], out: [12, 12], alignCorners: false, halfPixel: false },
  { name: 'non-square up', in: [2, 5, 7, 2], out: [10, 14], alignCorners: false, halfPixel: false },
  { name: 'half-pixel up', in: [2, 5, 6, 2], out: [9, 13], alignCorners: false, halfPixel: true },
  { name: 'align-corners down', in: [2, 9, 8, 2], out: [4, 5], alignCorners: true, halfPixel: false },
  { name: 'half-pixel down', in: [1, 11, 9, 3], out: [4, 3], alignCorners: false, halfPixel: true },
];

function data(key: string, n: number): Float32Array {
  return Rng.derive(11, 'resize-adjoint', key).fillNormal(new Float32Array(n)) as Float32Array;
}

// native too when it can load (tests/integration/native runs the rest of the native checks)
const native = nativeBackendStatus().ok;
for (const backend of ['cpu', 'wasm', ...(native ? ['tensorflow'] : [])] as BackendName[]) {
  describe(`resize gradients satisfy the adjoint identity on ${backend}`, () => {
    for (const mode of ['nearest', 'bilinear'] as const) {
      for (const c of configs) {
        it(`${mode} ${c.name}`, async () => {
          await useBackend(backend);
          const [lhs, rhs, shape] = tf.tidy(() => {
            const x = tf.tensor4d(data(`${c.name}/x`, c.in.reduce((a, b) => a * b)), c.in);
            const dy = tf.tensor4d(data(`${c.name}/dy`, c.in[0] * c.out[0] * c.out[1] * c.in[3]), [c.in[0], c.out[0], c.out[1], c.in[3]]);
            const f = (t: tf.Tensor) =>
              mode === 'nearest' ? tf.image.resizeNearestNeighbor(t as tf.Tensor4D, c.out, c.alignCorners, c.halfPixel) : tf.image.resizeBilinear(t as tf.Tensor4D, c.out, c.alignCorners, c.halfPixel);
            const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), dy)))(x);
            const r = [tf.sum(tf.mul(f(x), dy)).dataSync()[0]!, tf.sum(tf.mul(x, g)).dataSync()[0]!, g.shape];
            return r as unknown as tf.Tensor;
          }) as unknown as [number, number, number[]];
          assert.deepEqual(shape, c.in);
          assert.ok(Math.abs(lhs - rhs) <= 1e-4 * Math.max(1, Math.abs(lhs)), `<resize(x), dy> = ${lhs} but <x, grad> = ${rhs}`);
        });
      }
    }
  });
}
