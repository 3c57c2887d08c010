import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readSafetensors, toFloat32 } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { withoutNativeOps } from '../../../framework/engine/native-ops.js';
import { gridSample, msDeformAttnCore, pointSample } from '../../../registry/heads/common/sampling.js';
import { nativeSkipReason, normalData, opsRun, relErr, tf } from './_native.js';

/**
 * The fused bilinear grid sampling kernels (native/ops/grid_sample.cc, RassGridSample /
 * RassGridSampleGrad) against torch's grid_sample (the fixture tests/parity/heads/sampling.test.ts
 * checks the composite against, written by scripts/fixtures/heads): point sampling and the
 * multi-scale deformable attention core, values and gradients of maps, coordinates and weights
 * within 1e-4; and against the composite on a larger case with points well outside the map
 * (their corners read the clipped pixel with weight 0), several images and channels: output
 * within 1e-5, gradients within 1e-4 of the largest entry. The fused kernels must be what ran.
 */
const skip = nativeSkipReason();
const SAMPLING_OPS = ['RassGridSample', 'RassGridSampleGrad'];
const rassOps = (ops: string[]) => [...new Set(ops.filter((o) => o.startsWith('RassGrid')))].sort();

function fixture() {
  const fx = readSafetensors(join(process.cwd(), 'tests/fixtures/heads/sampling.safetensors'));
  return (name: string): tf.Tensor => {
    const e = fx.tensors.get(name);
    assert.ok(e, `fixture tensor ${name} missing`);
    return tf.tensor(toFloat32(e), e.shape as number[]);
  };
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number);
}

describe('fused grid sampling kernels (native backend)', { skip }, () => {
  it('point sampling vs torch grid_sample: value, d maps, d coords <= 1e-4', async () => {
    await useBackend('tensorflow');
    const T = fixture();
    const maps = T('ps.maps') as tf.Tensor4D;
    const coords = T('ps.coords') as tf.Tensor3D;
    const cot = T('ps.cot');
    const { value, ops } = opsRun(() => {
      const out = pointSample(maps, coords);
      const [gm, gc] = tf.grads((m: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(pointSample(m as tf.Tensor4D, c as tf.Tensor3D), cot)))([maps, coords]);
      return { out, gm: gm!, gc: gc! };
    });
    assert.deepEqual(rassOps(ops), SAMPLING_OPS);
    for (const [got, name] of [[value.out, 'ps.out'], [value.gm, 'ps.grad_maps'], [value.gc, 'ps.grad_coords']] as const) {
      assert.ok(maxDiff(got, T(name)) <= 1e-4, `${name} diff ${maxDiff(got, T(name))}`);
    }
  });

  it('multi-scale deformable attention core vs torch: output and gradients of values, locations, weights <= 1e-4', async () => {
    await useBackend('tensorflow');
    const T = fixture();
    const shapes: [number, number][] = [[6, 8], [3, 4], [2, 2]];
    const split = (v: tf.Tensor) => tf.split(v, shapes.map(([h, w]) => h * w), 1) as tf.Tensor4D[];
    const [value, loc, w, cot] = [T('da.value'), T('da.loc'), T('da.weights'), T('da.cot')];
    const { value: got, ops } = opsRun(() => {
      const out = msDeformAttnCore(split(value), shapes, loc, w);
      const grads = tf.grads((v: tf.Tensor, l: tf.Tensor, a: tf.Tensor) => tf.sum(tf.mul(msDeformAttnCore(split(v), shapes, l, a), cot)))([value, loc, w]);
      return [out, ...grads];
    });
    assert.deepEqual(rassOps(ops), SAMPLING_OPS);
    ['da.out', 'da.grad_value', 'da.grad_loc', 'da.grad_weights'].forEach((name, i) => {
      assert.ok(maxDiff(got[i]!, T(name)) <= 1e-4, `${name} diff ${maxDiff(got[i]!, T(name))}`);
    });
  });

  for (const c of [1, 7]) {
    it(`3 images of 13 x 9 x ${c}, 500 points each, a third of them outside the map: output <= 1e-5, d input / d grid <= 1e-4 of the composite`, async () => {
      await useBackend('tensorflow');
      const [n, h, w, p] = [3, 13, 9, 500];
      const run = () => {
        const input = tf.tensor4d(normalData(`gs${c}/in`, n * h * w * c), [n, h, w, c]);
        // x, y uniform in [-1.6, 1.6]: outside [-1, 1] the point (or some of its corners) is off the map
        const grid = tf.tensor3d(normalData(`gs${c}/grid`, n * p * 2).map((v) => Math.tanh(v) * 1.6), [n, p, 2]);
        const dy = tf.tensor3d(normalData(`gs${c}/dy`, n * p * c), [n, p, c]);
        const out = gridSample(input, grid);
        const grads = tf.grads((a: tf.Tensor, g: tf.Tensor) => tf.sum(tf.mul(gridSample(a as tf.Tensor4D, g as tf.Tensor3D), dy)))([input, grid]);
        const r = [out, ...grads].map((t) => t.dataSync() as Float32Array);
        tf.dispose([input, grid, dy, out, ...grads]);
        return r;
      };
      const ref = withoutNativeOps(run);
      const { value: fused, ops } = opsRun(run);
      assert.deepEqual(rassOps(ops), SAMPLING_OPS);
      const [e, ei, eg] = fused.map((f, i) => relErr(f, ref[i]!));
      assert.ok(e! <= 1e-5, `output relative error ${e!.toExponential(3)}`);
      assert.ok(ei! <= 1e-4, `d input relative error ${ei!.toExponential(3)}`);
      assert.ok(eg! <= 1e-4, `d grid relative error ${eg!.toExponential(3)}`);
      const again = run();
      assert.ok(again.every((a, i) => Buffer.from(a.buffer).equals(Buffer.from(fused[i]!.buffer))), 'a second call gives the same bits');
    });
  }

  it('forward + backward keep the tensor count flat over 10 steps', async () => {
    await useBackend('tensorflow');
    const input = tf.tensor4d(normalData('flat/in', 2 * 6 * 5 * 3), [2, 6, 5, 3]);
    const grid = tf.tensor3d(normalData('flat/grid', 2 * 40 * 2, 0.5), [2, 40, 2]);
    const step = () => tf.tidy(() => tf.grads((a: tf.Tensor, g: tf.Tensor) => tf.sum(tf.square(gridSample(a as tf.Tensor4D, g as tf.Tensor3D))))([input, grid]).forEach((t) => t.dataSync()));
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 10; i++) step();
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([input, grid]);
  });
});
