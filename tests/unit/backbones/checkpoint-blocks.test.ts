import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import { LoraModel } from '../../../registry/adapters/lora/lora.js';
import { TINY_UNET, TINY_VAE } from '../../../registry/backbones/sd/presets.js';
import { UNet2DConditionModel } from '../../../registry/backbones/sd/unet.js';
import { AutoencoderKL } from '../../../registry/backbones/sd/vae.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';

/**
 * `checkpoint: blocks` recomputes every ResNet/transformer block in the backward pass. The
 * reference is the same model without checkpointing: the loss and the gradients of every
 * trained variable (LoRA on attention and on a conv, a parameter marked trainable inside a
 * block, the input) must agree within 1e-5 of the largest gradient entry, also when a loss
 * reads captured cross-attention maps (those blocks then run un-checkpointed, the map on the tape).
 */
const TOL = 1e-5;
const ATTN2 = '.*attn2';

function randn(shape: number[], key: string, std = 1): tf.Tensor {
  return tf.tensor(Rng.derive(11, key).fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 0, std) as Float32Array, shape);
}

function assertGradsClose(a: Map<string, tf.Tensor>, b: Map<string, tf.Tensor>, what: string): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: gradient sets differ`);
  for (const [k, ga] of a) {
    const gb = b.get(k) as tf.Tensor;
    const [d, scale] = tf.tidy(() => [tf.max(tf.abs(tf.sub(ga, gb))).dataSync()[0] as number, tf.max(tf.abs(gb)).dataSync()[0] as number]);
    assert.ok((scale as number) > 0, `${what}: reference gradient of ${k} is zero (the test would not see a difference)`);
    assert.ok((d as number) <= TOL * (scale as number), `${what}: gradient of ${k} differs by ${(d as number).toExponential(3)} (max |g| ${(scale as number).toExponential(3)})`);
  }
}

describe('activation checkpointing (checkpoint: blocks)', () => {
  before(async () => {
    await useBackend('wasm');
  });

  function unetWithLora(): { unet: UNet2DConditionModel; lora: LoraModel; vars: tf.Variable[] } {
    const unet = new UNet2DConditionModel(TINY_UNET, 5);
    unet.store.markTrainable(['down_blocks\\.0\\.resnets\\.0\\.conv1\\.weight'], 'test');
    const lora = new LoraModel(unet.store, 1);
    // B gaussian (not PEFT's zero init) so A's gradients are not all zero
    const a = lora.add('t', { r: 4, alpha: 4, targetModules: ['to_q', 'to_k', 'to_v', 'to_out.0', 'conv2'], initB: 'gaussian', initBStd: 0.05 });
    const vars = [...a.layers.values()].flatMap((l) => [l.A, l.B]);
    vars.push(...unet.store.trainableVariables());
    return { unet, lora, vars };
  }

  function gradsOf(loss: () => tf.Scalar, vars: tf.Variable[], x?: tf.Tensor): { value: number; grads: Map<string, tf.Tensor> } {
    const { value, grads } = tf.variableGrads(loss, vars);
    const out = new Map(Object.entries(grads));
    if (x) {
      const [gx] = tf.grads(() => loss())([x]);
      out.set('input', gx as tf.Tensor);
    }
    const v = value.dataSync()[0] as number;
    value.dispose();
    return { value: v, grads: out };
  }

  it('UNet + LoRA (to_q/to_k/to_v/to_out.0, conv2) + a trainable conv: same loss and gradients within 1e-5', async () => {
    const { unet, lora, vars } = unetWithLora();
    const x = randn([2, 8, 8, 4], 'x') as tf.Tensor4D;
    const ctx = randn([2, 5, 32], 'ctx') as tf.Tensor3D;
    const loss = () => tf.mean(tf.square(unet.run(x, 700, ctx))) as tf.Scalar;
    const peak = async () => (await tf.profile(() => tf.dispose(Object.values(tf.variableGrads(loss, vars).grads)))).peakBytes;
    const plainPeak = await peak();
    const plain = gradsOf(loss, vars);
    unet.store.memory.checkpoint = 'blocks';
    const ckPeak = await peak();
    const ck = gradsOf(loss, vars);
    // what checkpointing is for: the step's peak falls (activations of all blocks are not held
    // at once). Under 0.6x: the freeing backward (engine/lean-gradients.ts) already lowers the
    // plain step's peak, so the gap is smaller than with tfjs' own backward (under 0.5x there)
    assert.ok(ckPeak < 0.6 * plainPeak, `checkpointed step peak ${ckPeak} bytes vs ${plainPeak} without`);
    assert.ok(Math.abs(ck.value - plain.value) <= 1e-6 * Math.abs(plain.value), `loss ${ck.value} vs ${plain.value}`);
    assert.ok(plain.grads.size === vars.length, 'every LoRA/trainable variable has a gradient');
    assertGradsClose(ck.grads, plain.grads, 'checkpointed UNet');
    tf.dispose([...plain.grads.values(), ...ck.grads.values()]);

    // the kept inputs, recomputation tapes and gradients are all released: no growth across steps
    await assertTensorCountFlat(() => {
      const { value, grads } = tf.variableGrads(loss, vars);
      tf.dispose([value, ...Object.values(grads)]);
    }, { label: 'checkpointed training step', warmup: 1, steps: 2 });
    tf.dispose([x, ctx]);
    lora.dispose();
    unet.dispose();
  });

  it('a loss on captured cross-attention maps trains the LoRA through the map, checkpointed or not', () => {
    const { unet, lora, vars } = unetWithLora();
    const x = randn([1, 8, 8, 4], 'x2') as tf.Tensor4D;
    const ctx = randn([1, 6, 32], 'ctx2') as tf.Tensor3D;
    const r = randn([1, 64, 6], 'r');
    const mapLoss = (withOutput: boolean) => () => {
      const o = unet.runWithTaps(x, 300, ctx, { captureAttention: { layers: [ATTN2], mode: 'mean' } });
      const map = o.attention.get('down_blocks.0.attentions.0.transformer_blocks.0.attn2') as tf.Tensor;
      assert.deepEqual(map.shape, [1, 64, 6]);
      const l = tf.sum(tf.mul(map, r));
      const total = withOutput ? tf.add(l, tf.mean(tf.square(o.sample))) : l;
      // the recorder keeps the maps outside any tidy: release them here, the tape holds what it needs
      for (const t of o.attention.values()) t.dispose();
      return total as tf.Scalar;
    };
    const mapOnly = gradsOf(mapLoss(false), vars);
    // only the captured layer's to_q/to_k can change its map: their gradient comes through the map alone
    const qName = [...mapOnly.grads.keys()].find((k) => k.includes('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q') && k.startsWith('lora_A')) as string;
    const gq = mapOnly.grads.get(qName) as tf.Tensor;
    assert.ok(tf.tidy(() => tf.max(tf.abs(gq)).dataSync()[0] as number) > 1e-6, 'no gradient reached to_q through the captured map');
    tf.dispose([...mapOnly.grads.values()]);

    const plain = gradsOf(mapLoss(true), vars);
    unet.store.memory.checkpoint = 'blocks';
    const ck = gradsOf(mapLoss(true), vars);
    assertGradsClose(ck.grads, plain.grads, 'checkpointed UNet with captured maps');
    tf.dispose([...plain.grads.values(), ...ck.grads.values(), x, ctx, r]);
    lora.dispose();
    unet.dispose();
  });

  it('VAE decoder: checkpointed ResNet blocks give the same gradients (trainable conv, LoRA, latent)', async () => {
    const vae = new AutoencoderKL(TINY_VAE, 2);
    vae.store.markTrainable(['decoder\\.up_blocks\\.0\\.resnets\\.0\\.conv1\\.weight'], 'test');
    const lora = new LoraModel(vae.store, 3);
    const a = lora.add('v', { r: 2, alpha: 2, targetModules: 'decoder\\.up_blocks\\.1\\.resnets\\.0\\.conv2', initB: 'gaussian' });
    const vars = [...vae.store.trainableVariables(), ...[...a.layers.values()].flatMap((l) => [l.A, l.B])];
    const z = randn([1, 16, 16, 4], 'z') as tf.Tensor4D;
    const loss = () => tf.mean(tf.square(vae.runDecode(z))) as tf.Scalar;
    const peak = async () => (await tf.profile(() => tf.dispose(Object.values(tf.variableGrads(loss, vars).grads)))).peakBytes;
    const plainPeak = await peak();
    const plain = gradsOf(loss, vars, z);
    vae.store.memory.checkpoint = 'blocks';
    const ckPeak = await peak();
    const ck = gradsOf(loss, vars, z);
    assert.ok(ckPeak < 0.8 * plainPeak, `checkpointed decoder step peak ${ckPeak} bytes vs ${plainPeak} without`);
    assertGradsClose(ck.grads, plain.grads, 'checkpointed VAE decoder');
    tf.dispose([...plain.grads.values(), ...ck.grads.values(), z]);
    lora.dispose();
    vae.dispose();
  });
});
