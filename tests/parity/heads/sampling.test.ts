import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors, toFloat32 } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { msDeformAttnCore, pointSample } from '../../../registry/heads/common/sampling.js';
import { assertGradientsRegistered } from '../../helpers/gradients.js';

const fx = readSafetensors(join(process.cwd(), 'tests/fixtures/heads/sampling.safetensors'));
function T(name: string): tf.Tensor {
  const e = fx.tensors.get(name);
  assert.ok(e, `fixture tensor ${name} missing`);
  return tf.tensor(toFloat32(e), e.shape as number[]);
}
function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

// useBackend registers tfjs's gradients; a missing one fails the gradient tests (never a skip)
const GRAD_KERNELS = ['Sum', 'Multiply', 'Sub', 'Add', 'GatherV2', 'Reshape', 'Transpose', 'Floor', 'Cast', 'ClipByValue', 'Slice'];

describe('sampling ops vs torch grid_sample (align_corners=False, zeros padding)', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('point sampling and deformable attention forward <= 1e-4', () => {
    const po = pointSample(T('ps.maps') as tf.Tensor4D, T('ps.coords') as tf.Tensor3D);
    assert.ok(maxDiff(po, T('ps.out')) <= 1e-4, `point sample diff ${maxDiff(po, T('ps.out'))}`);
    const shapes: [number, number][] = [[6, 8], [3, 4], [2, 2]];
    const split = tf.split(T('da.value'), shapes.map(([h, w]) => h * w), 1) as tf.Tensor4D[];
    const da = msDeformAttnCore(split, shapes, T('da.loc'), T('da.weights'));
    assert.ok(maxDiff(da, T('da.out')) <= 1e-4, `deformable attention diff ${maxDiff(da, T('da.out'))}`);
  });

  it('point sampling: values and gradients (maps and coordinates) <= 1e-4', () => {
    assertGradientsRegistered(GRAD_KERNELS);
    const maps = T('ps.maps') as tf.Tensor4D;
    const coords = T('ps.coords') as tf.Tensor3D;
    const cot = T('ps.cot');
    const out = pointSample(maps, coords);
    assert.ok(maxDiff(out, T('ps.out')) <= 1e-4, `forward diff ${maxDiff(out, T('ps.out'))}`);
    const g = tf.grads((m: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(pointSample(m as tf.Tensor4D, c as tf.Tensor3D), cot)));
    const [gm, gc] = g([maps, coords]);
    assert.ok(maxDiff(gm, T('ps.grad_maps')) <= 1e-4, `grad maps ${maxDiff(gm, T('ps.grad_maps'))}`);
    assert.ok(maxDiff(gc, T('ps.grad_coords')) <= 1e-4, `grad coords ${maxDiff(gc, T('ps.grad_coords'))}`);
  });

  it('multi-scale deformable attention core: output and gradients <= 1e-4', () => {
    assertGradientsRegistered(GRAD_KERNELS);
    const shapes: [number, number][] = [[6, 8], [3, 4], [2, 2]];
    const value = T('da.value');
    const split = (v: tf.Tensor) => tf.split(v, shapes.map(([h, w]) => h * w), 1) as tf.Tensor4D[];
    const loc = T('da.loc');
    const w = T('da.weights');
    const out = msDeformAttnCore(split(value), shapes, loc, w);
    assert.ok(maxDiff(out, T('da.out')) <= 1e-4, `forward diff ${maxDiff(out, T('da.out'))}`);
    const cot = T('da.cot');
    const g = tf.grads((v: tf.Tensor, l: tf.Tensor, a: tf.Tensor) => tf.sum(tf.mul(msDeformAttnCore(split(v), shapes, l, a), cot)));
    const [gv, gl, ga] = g([value, loc, w]);
    for (const [got, name] of [[gv, 'da.grad_value'], [gl, 'da.grad_loc'], [ga, 'da.grad_weights']] as const) {
      assert.ok(maxDiff(got, T(name)) <= 1e-4, `${name} diff ${maxDiff(got, T(name))}`);
    }
  });
});
