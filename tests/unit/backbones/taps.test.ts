import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import { UNet2DConditionModel, disposeOutput, type UNetConfig } from '../../../registry/backbones/sd/unet.js';

const CFG = JSON.parse(readFileSync(join(process.cwd(), 'tests/fixtures/backbones/tiny-sd/unet/config.json'), 'utf8')) as UNetConfig;

function inputs(): [tf.Tensor4D, tf.Tensor3D] {
  const r = Rng.derive(1, 'taps-test');
  return [tf.tensor4d(r.fillNormal(new Float32Array(2 * 8 * 8 * 4)) as Float32Array, [2, 8, 8, 4]), tf.tensor3d(r.fillNormal(new Float32Array(2 * 3 * 32)) as Float32Array, [2, 3, 32])];
}

describe('UNet taps and cross-attention capture', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('capturing features/attention changes no output, leaks nothing, and gives normalised maps', () => {
    const unet = new UNet2DConditionModel(CFG, 3);
    const [x, ctx] = inputs();
    const plain = unet.forward(x, 500, ctx).sample;
    const start = tf.memory().numTensors;
    const out = unet.forward(x, 500, ctx, { taps: ['up_blocks.1', 'mid_block'], captureAttention: { layers: ['.*attn2'], mode: 'mean' } });
    assert.deepEqual([...out.sample.dataSync()], [...plain.dataSync()], 'output changed by capture');
    // attn2 layers: down_blocks.0 (8x8 tokens), mid (4x4 -> at 4x4: 16), up_blocks.1 (8x8) x2 resnets
    const names = [...out.attention.keys()].sort();
    assert.ok(names.length >= 3 && names.every((n) => n.endsWith('attn2')), names.join(','));
    for (const [n, a] of out.attention) {
      assert.equal(a.rank, 3, n);
      assert.equal(a.shape[0], 2);
      assert.equal(a.shape[2], 3, 'keys = context tokens');
      const rowSums = tf.tidy(() => tf.sum(a, -1).dataSync());
      for (const s of rowSums) assert.ok(Math.abs(s - 1) < 1e-5, `${n} rows sum to ${s}`);
    }
    assert.deepEqual(out.features.get('up_blocks.1')?.shape, [2, 8, 8, 32]);
    out.sample.dispose();
    disposeOutput(out);
    assert.equal(tf.memory().numTensors, start, 'captured tensors leaked');

    const ph = unet.forward(x, 500, ctx, { captureAttention: { layers: ['down_blocks\\.0\\..*attn1'], mode: 'per-head' } });
    const [first] = [...ph.attention.values()];
    assert.deepEqual(first?.shape, [2, 2, 64, 64], 'per-head self-attention: [B, heads, N, N]');
    ph.sample.dispose();
    disposeOutput(ph);
    assert.throws(() => unet.forward(x, 500, ctx, { taps: ['up_blocks.7'] }), /unknown tap name.*up_blocks\.7/);
    assert.equal(tf.memory().numTensors, start, 'error path leaked');
    tf.dispose([plain, x, ctx]);
    unet.dispose();
  });
});
