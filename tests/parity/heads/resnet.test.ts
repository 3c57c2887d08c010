import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors, toFloat32, UserError, writeSafetensors, type PluginContext } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { resnetBackbone } from '../../../registry/backbones/resnet/plugin.js';
import { resnetKeys, RESNET_PRESETS, type ResNet } from '../../../registry/backbones/resnet/resnet.js';

const FX = join(process.cwd(), 'tests/fixtures/heads');
const ctx: PluginContext = {
  path: 'model.backbone',
  seed: 1,
  log: { info: () => undefined, warn: () => undefined, debug: () => undefined },
  resolvePath: (p) => resolve(p),
  build: () => Promise.reject(new Error('unused')),
  services: {},
};

describe('resnet backbone vs a torchvision-structured torch ResNet (same random weights)', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('layer1..4 (strides 4/8/16/32) match torch eval-mode outputs <= 1e-4 (cpu and wasm)', async () => {
    const io = readSafetensors(join(FX, 'resnet-io.safetensors'));
    const get = (k: string) => {
      const e = io.tensors.get(k);
      assert.ok(e, k);
      return tf.tensor(toFloat32(e), e.shape);
    };
    for (const backend of ['cpu', 'wasm'] as const) {
      await useBackend(backend);
      const net = (await resnetBackbone.create({ preset: 'tiny', weights: join(FX, 'resnet-tiny.safetensors'), prefix: '' } as never, ctx)) as ResNet;
      const feats = net.features(get('input') as tf.Tensor4D);
      assert.deepEqual(feats.map((f) => f.stride), [4, 8, 16, 32]);
      feats.forEach((f, i) => {
        const want = get(`layer${i + 1}`);
        assert.deepEqual(f.features.shape, want.shape);
        const d = tf.max(tf.abs(tf.sub(f.features, want))).dataSync()[0];
        const scale = tf.max(tf.abs(want)).dataSync()[0];
        assert.ok(d <= 1e-4 * Math.max(1, scale), `${backend} layer${i + 1}: max diff ${d} (max |ref| ${scale})`);
      });
      tf.dispose(feats.map((f) => f.features));
      net.dispose();
    }
    await useBackend('cpu');
  });

  it('torchvision key set for ResNet-50/101; bad weight files name the key', async () => {
    const r50 = resnetKeys(RESNET_PRESETS.resnet50);
    // torchvision resnet50: 53 convs (incl. 4 downsample) each followed by a BatchNorm; resnet101: 104
    assert.equal(r50.size, 53 * 5);
    assert.equal([...r50.values()].filter((s) => s.length === 4).length, 53);
    assert.equal([...resnetKeys(RESNET_PRESETS.resnet101).values()].filter((s) => s.length === 4).length, 104);
    assert.deepEqual(r50.get('layer4.2.conv3.weight'), [2048, 512, 1, 1]);
    assert.deepEqual(r50.get('layer2.0.downsample.0.weight'), [512, 256, 1, 1]);
    const dir = mkdtempSync(join(tmpdir(), 'rass-resnet-'));
    writeSafetensors(join(dir, 'bad.safetensors'), { 'conv1.weight': { dtype: 'F32', shape: [8, 3, 7, 7], data: new Float32Array(8 * 3 * 49) } } as never);
    await assert.rejects(async () => resnetBackbone.create({ preset: 'tiny', weights: join(dir, 'bad.safetensors'), prefix: '' } as never, ctx), (e: unknown) => e instanceof UserError && /missing tensor "bn1.weight"/.test(e.message) && /model\.backbone\.weights/.test(e.message));
    writeFileSync(join(dir, 'junk.safetensors'), 'junk');
    await assert.rejects(async () => resnetBackbone.create({ preset: 'tiny', weights: join(dir, 'junk.safetensors'), prefix: '' } as never, ctx), (e: unknown) => e instanceof UserError && /junk\.safetensors/.test(e.message));
  });
});
