/**
 * Gradients through differentiable DiffJPEG (`diffJpegTensor(..., differentiable = true)`) and
 * through a blur -> clamp -> DiffJPEG -> clamp pipeline built from the tensor ops, against
 * tests/fixtures/degradations/diffjpeg-grad.json: torch autograd of a float64 port of BasicSR's
 * DiffJPEG / filter2D, plus float64 central finite differences on a few input elements (the
 * generator checks those two agree; scripts/fixtures/degradations/make_diffjpeg_grad.py).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../../framework/engine/backend.js';
import { diffJpegTensor } from '../../../registry/degradations/jpeg/diffjpeg-tensor.js';
import { filter2d } from '../../../registry/degradations/common/filter2d.js';

interface GradCase { shape: [number, number, number, number]; input: number[]; weights: number[]; output: number[]; grad: number[]; fd: { index: number; value: number }[] }
interface Fixture { quality: number[]; kernels: { size: number; data: number[] }[]; cases: { jpeg: GradCase; pipeline: GradCase } }

const fx = JSON.parse(readFileSync(resolve(process.cwd(), 'tests/fixtures/degradations/diffjpeg-grad.json'), 'utf8')) as Fixture;

/** Gradient of sum(w * f(x)) at the fixture's input, and f(x) itself. */
function gradOf(c: GradCase, f: (x: tf.Tensor4D) => tf.Tensor4D): { grad: Float32Array; out: Float32Array } {
  const x = tf.tensor4d(c.input, c.shape);
  const w = tf.tensor4d(c.weights, c.shape);
  const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(w, f(a as tf.Tensor4D))))(x);
  const y = f(x);
  const res = { grad: g.dataSync() as Float32Array, out: y.dataSync() as Float32Array };
  tf.dispose([x, w, g, y]);
  return res;
}

function check(name: string, c: GradCase, grad: Float32Array): void {
  assert.equal(grad.length, c.grad.length);
  let maxRef = 0;
  let maxErr = 0;
  let meanAbs = 0;
  for (let i = 0; i < grad.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(c.grad[i]));
    maxErr = Math.max(maxErr, Math.abs(grad[i] - c.grad[i]));
    meanAbs += Math.abs(grad[i]) / grad.length;
  }
  // the gradient really reaches the input (a dropped path would leave zeros)
  assert.ok(meanAbs > 0.01, `${name}: mean |grad| ${meanAbs}`);
  // float32 tfjs against float64 torch: ~1e-5 of the largest entry; a wrong path is O(1)
  assert.ok(maxErr <= 1e-4 * maxRef, `${name}: max |tfjs - torch autograd| ${maxErr} (max |grad| ${maxRef})`);
  for (const { index, value } of c.fd) {
    assert.ok(Math.abs(grad[index] - value) <= 1e-4 * maxRef, `${name}: element ${index}: tfjs ${grad[index]} vs finite difference ${value}`);
  }
}

describe('differentiable DiffJPEG gradients (torch / finite-difference reference)', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('DiffJPEG alone: gradient equals torch autograd and finite differences', () => {
    const c = fx.cases.jpeg;
    const { grad, out } = gradOf(c, (x) => diffJpegTensor(x, fx.quality, true));
    check('jpeg', c, grad);
    // forward equals the reference too (same function the gradient is of)
    let d = 0;
    for (let i = 0; i < out.length; i++) d = Math.max(d, Math.abs(out[i] - c.output[i]));
    assert.ok(d < 1e-4, `jpeg forward max diff ${d}`);
  });

  it('a blur -> clamp -> DiffJPEG -> clamp pipeline passes the gradient to its input', () => {
    const c = fx.cases.pipeline;
    const f = (x: tf.Tensor4D) => tf.clipByValue(diffJpegTensor(tf.clipByValue(filter2d(x, fx.kernels), 0, 1) as tf.Tensor4D, fx.quality, true), 0, 1) as tf.Tensor4D;
    const { grad, out } = gradOf(c, f);
    check('pipeline', c, grad);
    let d = 0;
    for (let i = 0; i < out.length; i++) d = Math.max(d, Math.abs(out[i] - c.output[i]));
    assert.ok(d < 1e-4, `pipeline forward max diff ${d}`);
  });
});
