import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import { UserError } from '../../../framework/errors.js';
import { LoraModel, matchTargets } from '../../../registry/adapters/lora/lora.js';
import { UNet2DConditionModel, type UNetConfig } from '../../../registry/backbones/sd/unet.js';

const CFG = JSON.parse(readFileSync(join(process.cwd(), 'tests/fixtures/backbones/tiny-sd/unet/config.json'), 'utf8')) as UNetConfig;

describe('LoRA target matching (PEFT semantics)', () => {
  const names = ['a.attn1.to_q', 'a.attn1.to_out.0', 'b.to_q', 'b.proj_in', 'xto_q'];
  it('list entries match equal names or dotted suffixes', () => {
    assert.deepEqual(matchTargets(names, ['to_q']), ['a.attn1.to_q', 'b.to_q']);
    assert.deepEqual(matchTargets(names, ['to_out.0', 'proj_in']), ['a.attn1.to_out.0', 'b.proj_in']);
  });
  it('a string is a full-match regex', () => {
    assert.deepEqual(matchTargets(names, 'a\\..*'), ['a.attn1.to_q', 'a.attn1.to_out.0']);
    assert.throws(() => matchTargets(names, 'attn1'), UserError);
  });
  it('an entry that matches nothing is an error naming it', () => {
    assert.throws(() => matchTargets(names, ['to_q', 'to_kk']), /"to_kk" matches no/);
  });
});

describe('LoRA behaviour on a random tiny UNet', () => {
  before(async () => {
    await useBackend('cpu');
  });
  it('merge/unmerge reproduce the unmerged output and restore the base weights; several adapters add up', () => {
    const unet = new UNet2DConditionModel(CFG, 1);
    const r = Rng.derive(2, 'lora-unit');
    const x = tf.tensor4d(r.fillNormal(new Float32Array(8 * 8 * 4)) as Float32Array, [1, 8, 8, 4]);
    const ctx = tf.tensor3d(r.fillNormal(new Float32Array(3 * 32)) as Float32Array, [1, 3, 32]);
    const y = () => unet.forward(x, 10, ctx).sample;
    const base = y();
    const w0 = unet.store.params.get('down_blocks.0.resnets.0.conv1.weight')?.variable.dataSync().slice() as Float32Array;
    const lora = new LoraModel(unet.store, 9);
    lora.add('one', { r: 2, alpha: 2, targetModules: ['conv1', 'to_v'], initB: 'gaussian', initBStd: 0.1 });
    lora.add('two', { r: 4, alpha: 8, targetModules: '.*attn2\\.to_(q|k)', init: 'kaiming', initB: 'gaussian', initBStd: 0.1 });
    const both = y();
    lora.setEnabled('two', false);
    const onlyOne = y();
    lora.setEnabled('two', true);
    const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number);
    assert.ok(diff(both, onlyOne) > 1e-4 && diff(onlyOne, base) > 1e-4, 'each adapter contributes');
    lora.merge();
    const merged = y();
    assert.ok(diff(merged, both) < 1e-4, `merged differs by ${diff(merged, both)}`);
    lora.unmerge();
    const w1 = unet.store.params.get('down_blocks.0.resnets.0.conv1.weight')?.variable.dataSync() as Float32Array;
    let maxW = 0;
    for (let i = 0; i < w0.length; i++) maxW = Math.max(maxW, Math.abs((w0[i] as number) - (w1[i] as number)));
    assert.ok(maxW < 1e-6, `unmerge left the base weights off by ${maxW}`);
    const unmerged = y();
    assert.ok(diff(unmerged, both) < 1e-5);
    lora.dispose();
    const after = y();
    assert.ok(diff(after, base) < 1e-5, 'removing adapters restores the base');
    tf.dispose([x, ctx, base, both, onlyOne, merged, unmerged, after]);
    unet.dispose();
  });

  it('default init (B = 0) leaves the output unchanged', () => {
    const unet = new UNet2DConditionModel(CFG, 1);
    const x = tf.ones([1, 8, 8, 4]) as tf.Tensor4D;
    const ctx = tf.ones([1, 3, 32]) as tf.Tensor3D;
    const base = unet.forward(x, 10, ctx).sample;
    const lora = new LoraModel(unet.store);
    lora.add('g', { r: 4, alpha: 4, dropout: 0.5, targetModules: ['to_q', 'to_k', 'to_v', 'to_out.0'] });
    const y = unet.forward(x, 10, ctx).sample;
    assert.deepEqual([...y.dataSync()], [...base.dataSync()]);
    tf.dispose([x, ctx, base, y]);
    lora.dispose();
    unet.dispose();
  });

  it('dropout acts only in training mode', () => {
    const unet = new UNet2DConditionModel(CFG, 1);
    const x = tf.ones([1, 8, 8, 4]) as tf.Tensor4D;
    const ctx = tf.ones([1, 3, 32]) as tf.Tensor3D;
    const lora = new LoraModel(unet.store, 4);
    lora.add('d', { r: 4, alpha: 4, dropout: 0.5, targetModules: ['to_q', 'conv1'], initB: 'gaussian', initBStd: 0.2 });
    const run = () => unet.forward(x, 10, ctx).sample;
    const e1 = run();
    const e2 = run();
    lora.setTraining(true);
    const t1 = run();
    lora.setTraining(false);
    const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number);
    assert.equal(diff(e1, e2), 0, 'eval forward is deterministic');
    assert.ok(diff(e1, t1) > 1e-4, 'training forward drops LoRA inputs');
    tf.dispose([x, ctx, e1, e2, t1]);
    lora.dispose();
    unet.dispose();
  });
});

describe('LoRA refusals leave the model as it was', () => {
  before(async () => {
    await useBackend('cpu');
  });
  it('an invalid rank_pattern creates no layers and no tensors; a merge lora_bias refuses merges nothing', () => {
    const unet = new UNet2DConditionModel(CFG, 1);
    const lora = new LoraModel(unet.store, 3);
    const deltas = () => [...unet.store.modules.values()].reduce((n, m) => n + m.deltas.length, 0);
    const tensors = tf.memory().numTensors;
    // the bad pattern key sorts after a good one, so a check made per module would fail halfway
    assert.throws(() => lora.add('bad', { r: 2, alpha: 2, targetModules: ['to_q', 'to_v'], rankPattern: { to_q: 4, 'to_v(': 8 } }), /rank_pattern: invalid pattern "to_v\("/);
    assert.equal(deltas(), 0, 'no LoRA layer was attached');
    assert.equal(tf.memory().numTensors, tensors, 'no tensor was created');
    // to_out.0 has a bias, to_q has none: merging with lora_bias is refused before any layer
    // merges (the layer with a bias comes first in module order, so a per-layer check would
    // have merged it already)
    const withBias = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0';
    lora.add('b', { r: 2, alpha: 2, targetModules: [withBias, 'up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_q'], initB: 'gaussian', initBStd: 0.1, loraBias: true });
    const w = (p: string) => unet.store.params.get(p)?.variable.dataSync().slice() as Float32Array;
    const outName = `${withBias}.weight`;
    const before = w(outName);
    assert.throws(() => lora.merge(), /cannot merge with lora_bias because the base layer has no bias/);
    assert.deepEqual(w(outName), before, 'the layer with a bias was not merged either');
    assert.throws(() => lora.mergeAndUnloadOne('b'), /cannot merge with lora_bias/);
    assert.deepEqual(w(outName), before);
    assert.ok(deltas() > 0, 'the adapter is still attached');
    lora.dispose();
  });
});
