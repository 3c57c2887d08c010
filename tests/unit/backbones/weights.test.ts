import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../../framework/engine/backend.js';
import { readSafetensors, toFloat32, writeSafetensors, type WritableTensor } from '../../../framework/engine/safetensors.js';
import { UserError } from '../../../framework/errors.js';
import { loadVae } from '../../../registry/backbones/sd/pretrained.js';
import { AutoencoderKL } from '../../../registry/backbones/sd/vae.js';
import { exportWeights, loadWeights } from '../../../registry/backbones/sd/weights.js';

const VAE = join(process.cwd(), 'tests/fixtures/backbones/tiny-sd/vae');

describe('diffusers weight folders', () => {
  before(async () => {
    await useBackend('cpu');
  });

  function folderWith(tensors: Map<string, { shape: number[]; data: Float32Array }>, shards: number): string {
    const root = mkdtempSync(join(tmpdir(), 'sdw-'));
    mkdirSync(join(root, 'vae'));
    copyFileSync(join(VAE, 'config.json'), join(root, 'vae', 'config.json'));
    const names = [...tensors.keys()];
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < shards; s++) {
      const file = `diffusion_pytorch_model-0000${s + 1}-of-0000${shards}.safetensors`;
      const part: Record<string, WritableTensor> = {};
      names.filter((_, i) => i % shards === s).forEach((n) => {
        const t = tensors.get(n) as { shape: number[]; data: Float32Array };
        part[n] = { dtype: 'F32', shape: t.shape, data: t.data };
        weightMap[n] = file;
      });
      writeSafetensors(join(root, 'vae', file), part);
    }
    writeFileSync(join(root, 'vae', 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    return root;
  }

  const original = () =>
    new Map([...readSafetensors(join(VAE, 'diffusion_pytorch_model.safetensors')).tensors].map(([k, e]) => [k, { shape: e.shape, data: toFloat32(e) }]));

  it('loads a sharded checkpoint through its index with the same result as the single file', () => {
    const root = folderWith(original(), 3);
    const a = loadVae(root);
    const b = loadVae(join(process.cwd(), 'tests/fixtures/backbones/tiny-sd'));
    const x = tf.fill([1, 8, 8, 3], 0.3) as tf.Tensor4D;
    const ya = a.encode(x).mean;
    const yb = b.encode(x).mean;
    assert.deepEqual(ya.dataSync(), yb.dataSync());
    tf.dispose([x, ya, yb]);
    a.dispose();
    b.dispose();
    rmSync(root, { recursive: true });
  });

  it('names missing keys, shape mismatches and unexpected keys', () => {
    const t = original();
    t.delete('encoder.conv_in.weight');
    const bad = t.get('decoder.conv_out.bias') as { shape: number[]; data: Float32Array };
    t.set('decoder.conv_out.bias', { shape: [4], data: new Float32Array(4) });
    t.set('encoder.extra.weight', { shape: [1], data: new Float32Array(1) });
    assert.equal(bad.shape[0], 3);
    const root = folderWith(t, 1);
    assert.throws(
      () => loadVae(root),
      (e: Error) =>
        e instanceof UserError &&
        /missing 1 key\(s\): encoder\.conv_in\.weight/.test(e.message) &&
        /decoder\.conv_out\.bias: file has \[4\] but the model needs \[3\]/.test(e.message) &&
        /unexpected 1 key\(s\).*encoder\.extra\.weight/.test(e.message),
    );
    rmSync(root, { recursive: true });
  });

  it('exported weights (torch layouts, diffusers names) load back bit-exactly', () => {
    const a = loadVae(join(process.cwd(), 'tests/fixtures/backbones/tiny-sd'));
    const root = mkdtempSync(join(tmpdir(), 'sdx-'));
    const file = join(root, 'vae.safetensors');
    writeSafetensors(file, exportWeights(a.store));
    const b = new AutoencoderKL(a.config, 99);
    loadWeights(b.store, readSafetensors(file).tensors, file);
    for (const [k, p] of a.store.params) assert.deepEqual(b.store.params.get(k)?.variable.dataSync(), p.variable.dataSync(), k);
    a.dispose();
    b.dispose();
    rmSync(root, { recursive: true });
  });
});
