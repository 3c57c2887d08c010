import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { PluginContext } from '../../../framework/api.js';
import { UserError } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { loraPlugin, type LoraAdapter } from '../../../registry/adapters/lora/plugin.js';
import { autoencoderKl, clipText, unet2dCondition } from '../../../registry/backbones/sd/plugins.js';
import type { ClipTextModel } from '../../../registry/backbones/sd/clip.js';
import type { UNet2DConditionModel } from '../../../registry/backbones/sd/unet.js';
import type { AutoencoderKL } from '../../../registry/backbones/sd/vae.js';
import { TINY_UNET, TINY_VAE } from '../../../registry/backbones/sd/presets.js';

const TINY_SD = join(process.cwd(), 'tests/fixtures/backbones/tiny-sd');

function ctx(logs: string[] = []): PluginContext {
  return {
    path: 'model.x',
    seed: 7,
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(m), debug: () => undefined },
    resolvePath: (p) => resolve(p),
    build: () => Promise.reject(new Error('not used')),
    services: {},
  };
}

describe('backbone and adapter plugins', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('tiny presets build and run end to end (text -> UNet -> VAE)', async () => {
    const clip = (await clipText.create({ preset: 'tiny', trainable: [] } as never, ctx())) as ClipTextModel;
    const unet = (await unet2dCondition.create({ preset: 'tiny', trainable: ['conv_in\\..*'] } as never, ctx())) as UNet2DConditionModel;
    const vae = (await autoencoderKl.create({ preset: 'tiny', trainable: [] } as never, ctx())) as AutoencoderKL;
    assert.deepEqual([...unet.store.trainable].sort(), ['conv_in.bias', 'conv_in.weight']);
    const emb = clip.encodeText(['a photo of a cat']);
    assert.deepEqual(emb.shape, [1, 77, 32]);
    const z = tf.zeros([1, 8, 8, 4]) as tf.Tensor4D;
    const y = unet.forward(z, 999, emb).sample;
    const img = vae.decode(y).sample;
    assert.deepEqual(img.shape, [1, 16, 16, 3]);
    tf.dispose([emb, z, y, img]);
    [clip, unet, vae].forEach((m) => m.dispose());
  });

  it('memory options reach the model: checkpoint and attention chunk (defaults: none, automatic)', async () => {
    const plain = (await unet2dCondition.create({ preset: 'tiny', trainable: [] } as never, ctx())) as UNet2DConditionModel;
    assert.deepEqual(plain.store.memory, { attentionChunk: 0, checkpoint: 'none' });
    const unet = (await unet2dCondition.create({ preset: 'tiny', trainable: [], checkpoint: 'blocks', attentionChunk: 128 } as never, ctx())) as UNet2DConditionModel;
    const vae = (await autoencoderKl.create({ preset: 'tiny', trainable: [], checkpoint: 'blocks', attentionChunk: 0 } as never, ctx())) as AutoencoderKL;
    assert.deepEqual(unet.store.memory, { attentionChunk: 128, checkpoint: 'blocks' });
    assert.equal(vae.store.memory.checkpoint, 'blocks');
    [plain, unet, vae].forEach((m) => m.dispose());
  });

  it('an inline `config` with a diffusers key this project does not compute is refused naming the option, key and value', async () => {
    const cfg = { ...TINY_UNET, dropout: 0.1, down_block_types: ['CrossAttnDownBlock2D', 'AttnDownBlock2D'] };
    await assert.rejects(
      async () => unet2dCondition.create({ preset: 'tiny', trainable: [], config: cfg } as never, ctx()),
      (e: unknown) => e instanceof UserError && /^model\.x\.config: /.test(e.message) && e.message.includes('dropout = 0.1') && e.message.includes('down_block_types[1] = "AttnDownBlock2D"'),
    );
    await assert.rejects(
      async () => autoencoderKl.create({ preset: 'tiny', trainable: [], config: { ...TINY_VAE, shift_factor: 0.1159 } } as never, ctx()),
      (e: unknown) => e instanceof UserError && e.message.startsWith('model.x.config: ') && e.message.includes('shift_factor = 0.1159'),
    );
  });

  it('sd21-base loads a diffusers folder and explains what is missing', async () => {
    const unet = (await unet2dCondition.create({ preset: 'sd21-base', path: TINY_SD, trainable: [] } as never, ctx())) as UNet2DConditionModel;
    assert.equal(unet.config.cross_attention_dim, 32);
    unet.dispose();
    await assert.rejects(async () => unet2dCondition.create({ preset: 'sd21-base', trainable: [] } as never, ctx()), /model\.x\.path: preset sd21-base needs `path`/);
    const dir = mkdtempSync(join(tmpdir(), 'sd-'));
    mkdirSync(join(dir, 'text_encoder'));
    writeFileSync(join(dir, 'text_encoder', 'config.json'), '{}');
    await assert.rejects(
      async () => clipText.create({ preset: 'sd21-base', path: dir, trainable: [] } as never, ctx()),
      (e: Error) => e instanceof UserError && e.message.includes(`${join(dir, 'text_encoder')}/{model.safetensors`) && e.message.includes(join(dir, 'tokenizer', 'vocab.json')) && e.message.includes(join(dir, 'tokenizer', 'merges.txt')),
    );
    rmSync(dir, { recursive: true });
    await assert.rejects(async () => unet2dCondition.create({ preset: 'tiny', trainable: ['no_such\\..*'] } as never, ctx()), /trainable pattern "no_such/);
  });

  it('adapter/lora attaches, reports trainable/total counts, and loads a PEFT folder', async () => {
    const unet = (await unet2dCondition.create({ preset: 'sd21-base', path: TINY_SD, trainable: [] } as never, ctx())) as UNet2DConditionModel;
    const logs: string[] = [];
    const a = (await loraPlugin.create({ name: 'scr', r: 4, alpha: 4, dropout: 0, target_modules: ['to_q', 'to_k', 'to_v', 'to_out.0'], init: 'gaussian', init_b: 'zero', use_rslora: false } as never, ctx(logs))) as LoraAdapter;
    a.attach(unet.store);
    // Expected from the diffusers config (tiny-sd/unet/config.json), not from the adapter: the
    // transformer blocks are down_blocks.0 (CrossAttnDownBlock2D, 32 ch, layers_per_block 1),
    // the mid block (64 ch) and up_blocks.1 (CrossAttnUpBlock2D, 32 ch, layers_per_block + 1 = 2).
    // Each has attn1 (self: to_q/k/v/out all C -> C) and attn2 (cross: to_k/to_v 32 -> C); a
    // LoRA of rank r on a Linear in -> out has r * (in + out) parameters.
    const r = 4;
    const cross = 32;
    const perBlock = (c: number) => 4 * r * (c + c) + 2 * r * (c + c) + 2 * r * (cross + c);
    const expected = 3 * perBlock(32) + perBlock(64);
    assert.equal(expected, 9984);
    assert.equal(a.trainableVariables().reduce((s, v) => s + v.size, 0), expected);
    assert.match(logs.join('\n'), new RegExp(`LoRA "scr" on 32 layers: trainable ${expected.toLocaleString('en-US')} / total `));
    a.dispose();
    const b = (await loraPlugin.create({ name: 'p', r: 4, alpha: 4, dropout: 0, target_modules: 'x', init: 'gaussian', init_b: 'zero', use_rslora: false, load: join(process.cwd(), 'tests/fixtures/backbones/peft') } as never, ctx())) as LoraAdapter;
    b.attach(unet.store);
    assert.equal(b.model?.adapters.get('p')?.config.r, 4);
    b.dispose();
    unet.dispose();
  });
});
