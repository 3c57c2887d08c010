import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { useBackend } from '../../../framework/engine/backend.js';
import { LoraModel } from '../../../registry/adapters/lora/lora.js';
import { loadUNet } from '../../../registry/backbones/sd/pretrained.js';
import { FIXTURES, TINY_SD, fixture } from '../backbones/_fixtures.js';
import { assertGradientsRegistered } from '../../helpers/gradients.js';

const MODULES = ['down_blocks.0.resnets.0.conv1', 'up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_q', 'mid_block.attentions.0.proj_in'];

describe('LoRA gradients vs peft/torch autograd (tiny UNet, loss mean(y^2))', () => {
  before(async () => {
    await useBackend('cpu');
    fixture('unet.out');
  });

  it('dL/dA and dL/dB match for linear and conv LoRA layers', () => {
    // useBackend registers the gradients; a missing one is a failure, not a skip
    assertGradientsRegistered(['Mean', 'Conv2D', 'Erf', 'Tile', 'BatchMatMul']);
    const unet = loadUNet(TINY_SD);
    const lora = new LoraModel(unet.store);
    const a = lora.load(join(FIXTURES, 'peft'), 'p');
    const vars: { key: string; v: tf.Variable; conv: boolean }[] = [];
    for (const m of MODULES) {
      const l = a.layers.get(m);
      assert.ok(l, `adapter has no layer ${m}`);
      vars.push({ key: `${m}.lora_A.weight`, v: l.A, conv: l.base.kind === 'conv' }, { key: `${m}.lora_B.weight`, v: l.B, conv: l.base.kind === 'conv' });
    }
    const { value, grads } = tf.variableGrads(
      () => tf.mean(tf.square(unet.run(fixture('unet.sample') as tf.Tensor4D, fixture('unet.timesteps') as tf.Tensor1D, fixture('unet.context') as tf.Tensor3D))) as tf.Scalar,
      vars.map((x) => x.v),
    );
    for (const { key, v, conv } of vars) {
      const g = grads[v.name] as tf.Tensor;
      const torchLayout = tf.tidy(() => (conv ? tf.transpose(g, [3, 2, 0, 1]) : tf.transpose(g, [1, 0])));
      const ref = fixture(`peft.grad.${key}`);
      const scale = tf.tidy(() => tf.max(tf.abs(ref)).dataSync()[0] as number);
      const d = tf.tidy(() => tf.max(tf.abs(tf.sub(torchLayout, ref))).dataSync()[0] as number);
      assert.ok(scale > 0, `${key}: reference gradient is zero`);
      assert.ok(d <= 1e-6 + 1e-3 * scale, `${key}: gradient differs by ${d.toExponential(3)} (max |g| ${scale.toExponential(3)})`);
      torchLayout.dispose();
    }
    tf.dispose([value, ...Object.values(grads)]);
    lora.dispose();
    unet.dispose();
  });
});
