/**
 * Degradation plugins and pipeline presets: they build from YAML, run on wasm at scale 1 and 4,
 * are deterministic in (seed, sample index) whatever the batch, record their sampled parameters,
 * and leak no tensors.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import type { Degradation } from '../../../framework/api.js';
import { plugins } from '../../../registry/degradations/index.js';
import { buildDegradation, buildDegradationFile } from '../../../registry/degradations/common/build.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';

const build = (node: unknown) => buildDegradation(node as never, { plugins });

/** A smooth-plus-texture test image (deterministic, not constant: noise/JPEG/USM all act on it). */
function image(h: number, w: number, seed: number): Float32Array {
  const r = Rng.derive(seed, 'test-image');
  const d = new Float32Array(h * w * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    const v = 0.5 + 0.3 * Math.sin((x + 3 * c) / 5) * Math.cos(y / 7) + 0.1 * r.normal();
    d[(y * w + x) * 3 + c] = Math.min(Math.max(v, 0), 1);
  }
  return d;
}
const batchOf = (h: number, w: number, seeds: number[]) => tf.tensor4d(Float32Array.from(seeds.flatMap((s) => [...image(h, w, s)])), [seeds.length, h, w, 3]);
const streams = (seed: number, idx: number[]) => idx.map((i) => Rng.derive(seed, 'degradation', i));

async function run(d: Degradation, x: tf.Tensor4D, seed: number, idx: number[], record?: Record<string, unknown>[]): Promise<Float32Array> {
  const y = await d.apply(x, { rng: streams(seed, idx), record });
  const data = y.dataSync() as Float32Array;
  if (y !== x) y.dispose();
  return Float32Array.from(data);
}

describe('degradation pipeline (wasm)', () => {
  before(async () => useBackend('wasm'));

  it('every plugin is kind degradation with a unique name', () => {
    assert.ok(plugins.every((p) => p.kind === 'degradation'));
    assert.equal(new Set(plugins.map((p) => p.name)).size, plugins.length);
  });

  it('rass-full (scale 1) returns the input size, 8-bit values, deterministic per (seed, sample index) across batches', async () => {
    const d = await buildDegradationFile(`configs/_base_/degradations/rass-full.yaml`, { plugins });
    const x = batchOf(64, 64, [1, 2, 3]);
    const recs = [{}, {}, {}] as Record<string, unknown>[];
    const all = await run(d, x, 7, [10, 11, 12], recs);
    assert.equal(all.length, 3 * 64 * 64 * 3);
    for (const v of all) {
      assert.ok(v >= 0 && v <= 1);
      assert.ok(Math.abs(v * 255 - Math.round(v * 255)) < 1e-4, 'values on the k/255 grid');
    }
    // sample 11 alone, in another batch position, gives the same image
    const x1 = batchOf(64, 64, [2]);
    const alone = await run(d, x1, 7, [11]);
    assert.deepEqual(alone, all.subarray(64 * 64 * 3, 2 * 64 * 64 * 3));
    // a different seed or sample index changes it
    const other = await run(d, x1, 8, [11]);
    assert.notDeepEqual(other, alone);
    // the recorded params name every stage
    for (const k of ['blur1', 'resize1', 'noise1', 'jpeg1', 'blur2', 'resize2', 'noise2', 'final', 'round']) assert.ok(k in recs[1], `record has ${k}`);
    const final = recs[1].final as { order: string[]; resize_sinc: Record<string, unknown> };
    assert.equal(final.order.length, 2);
    assert.deepEqual((final.resize_sinc.resize as { size: number[] }).size, [64, 64]);
    tf.dispose([x, x1]);
  });

  it('realesrgan (scale 4) degrades 256x256 to 64x64', async () => {
    const d = await buildDegradationFile(`configs/_base_/degradations/realesrgan.yaml`, { plugins });
    const x = batchOf(256, 256, [5]);
    const y = await d.apply(x, { rng: streams(1, [0]) });
    assert.deepEqual(y.shape, [1, 64, 64, 3]);
    tf.dispose([x, y]);
  });

  it('mild and none presets build; none is the identity', async () => {
    const mild = await buildDegradationFile(`configs/_base_/degradations/mild.yaml`, { plugins });
    const none = await buildDegradationFile(`configs/_base_/degradations/none.yaml`, { plugins });
    const x = batchOf(48, 40, [9]);
    const m = await mild.apply(x, { rng: streams(3, [0]) });
    assert.deepEqual(m.shape, [1, 48, 40, 3]);
    const n = await none.apply(x, { rng: streams(3, [0]) });
    assert.deepEqual(n.dataSync(), x.dataSync());
    tf.dispose([x, m, n]);
  });

  it('probability gates: prob 0 never runs, prob 1 always runs, and the gate is recorded', async () => {
    const off = await build({ type: 'degradation/noise', prob: 0 });
    const on = await build({ type: 'degradation/noise', prob: 1, gaussian_prob: 1, sigma_range: [10, 10] });
    const x = batchOf(16, 16, [4, 5]);
    const recs = [{}, {}] as Record<string, unknown>[];
    const a = await off.apply(x, { rng: streams(1, [0, 1]), record: recs });
    assert.equal(a, x);
    assert.deepEqual(recs[0].noise, { applied: false });
    const b = await on.apply(x, { rng: streams(1, [0, 1]), record: recs });
    assert.notDeepEqual(b.dataSync(), x.dataSync());
    assert.equal((recs[1].noise as { sigma: number }).sigma, 10);
    tf.dispose([x, b]);
  });

  it('random-order draws both orders over many samples', async () => {
    const d = await build({ type: 'degradation/random-order', stages: [{ id: 'a', type: 'degradation/clamp' }, { id: 'b', type: 'degradation/round' }] });
    const x = batchOf(8, 8, [1]);
    const orders = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const rec = [{}] as Record<string, unknown>[];
      const y = await d.apply(x, { rng: streams(2, [i]), record: rec });
      if (y !== x) y.dispose();
      orders.add((rec[0].order as string[]).join(''));
    }
    assert.deepEqual([...orders].sort(), ['ab', 'ba']);
    x.dispose();
  });

  it('bad stage options are rejected with the stage path', async () => {
    await assert.rejects(build({ type: 'degradation/pipeline', stages: [{ type: 'degradation/blur', sinc_prob: 2 }] }), /stages\[0\]\.sinc_prob: must be <= 1, got number 2/);
    await assert.rejects(build({ type: 'degradation/pipeline', stages: [{ type: 'degradation/nope' }] }), /stages\[0\]\.type: unknown plugin degradation\/nope/);
    await assert.rejects(build({ type: 'degradation/pipeline', stages: [{ id: 'a', type: 'degradation/clamp' }, { id: 'a', type: 'degradation/round' }] }), /duplicate stage id "a"/);
  });

  it('leaks no tensors across repeated pipeline runs', async () => {
    const d = await buildDegradationFile(`configs/_base_/degradations/rass-full.yaml`, { plugins });
    const x = batchOf(48, 48, [3]);
    await assertTensorCountFlat(async (i) => {
      const y = await d.apply(x, { rng: streams(5, [i]) });
      if (y !== x) y.dispose();
    }, { label: 'rass-full pipeline' });
    x.dispose();
  });
});
