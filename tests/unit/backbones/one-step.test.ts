import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import { LoraModel } from '../../../registry/adapters/lora/lora.js';
import { OneStepRestorer, alphaBar } from '../../../registry/backbones/sd/one-step.js';
import { UNet2DConditionModel, type UNetConfig } from '../../../registry/backbones/sd/unet.js';
import { AutoencoderKL, type VaeConfig } from '../../../registry/backbones/sd/vae.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';
import { assertGradientsRegistered } from '../../helpers/gradients.js';

const SD = join(process.cwd(), 'tests/fixtures/backbones/tiny-sd');
const cfg = <T>(c: string) => JSON.parse(readFileSync(join(SD, c, 'config.json'), 'utf8')) as T;

describe('one-step restorer (OSEDiff-style)', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('alpha-bar of the SD scaled-linear schedule', () => {
    // diffusers DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod (float32)
    for (const [t, ref] of [[999, 0.00466009508818388], [500, 0.27633246779441833], [1, 0.9982960224151611]] as const) {
      assert.ok(Math.abs(alphaBar(t) - ref) < 1e-6 * Math.max(ref, 1e-3) + 1e-8, `t=${t}: ${alphaBar(t)} vs ${ref}`);
    }
    assert.ok(Math.abs(alphaBar(0) - (1 - 0.00085)) < 1e-12);
  });

  it('restores an NHWC image in [-1, 1] to the same shape, clamped, without leaking', () => {
    const vae = new AutoencoderKL(cfg<VaeConfig>('vae'), 1);
    const unet = new UNet2DConditionModel(cfg<UNetConfig>('unet'), 2);
    const ctx = tf.zeros([1, 4, 32]) as tf.Tensor3D;
    const model = new OneStepRestorer(vae, unet, ctx);
    const lq = tf.fill([2, 16, 16, 3], 0.25) as tf.Tensor4D;
    const start = tf.memory().numTensors;
    const y = model.restore(lq);
    assert.deepEqual(y.shape, [2, 16, 16, 3]);
    const v = y.dataSync();
    assert.ok(v.every((x) => x >= -1 && x <= 1 && Number.isFinite(x)));
    y.dispose();
    assert.equal(tf.memory().numTensors, start);
    tf.dispose([ctx, lq]);
    vae.dispose();
    unet.dispose();
  });

  it('a training step changes only LoRA weights (frozen weights bit-identical) and leaks nothing', async () => {
    // useBackend registers the gradients; a missing one is a failure, not a skip
    assertGradientsRegistered(['Mean', 'Conv2D', 'Erf', 'Tile', 'ClipByValue']);
    const vae = new AutoencoderKL(cfg<VaeConfig>('vae'), 1);
    const unet = new UNet2DConditionModel(cfg<UNetConfig>('unet'), 2);
    const lora = new LoraModel(unet.store, 3);
    lora.add('sr', { r: 2, alpha: 2, targetModules: ['to_q', 'to_k', 'to_v', 'to_out.0', 'conv1'], dropout: 0.1, initB: 'gaussian', initBStd: 0.01 });
    lora.setTraining(true);
    const r = Rng.derive(4, 'one-step');
    const lq = tf.tensor4d(r.fillUniform(new Float32Array(2 * 16 * 16 * 3), -1, 1) as Float32Array, [2, 16, 16, 3]);
    const hq = tf.tensor4d(r.fillUniform(new Float32Array(2 * 16 * 16 * 3), -1, 1) as Float32Array, [2, 16, 16, 3]);
    const ctx = tf.tensor3d(r.fillNormal(new Float32Array(4 * 32)) as Float32Array, [1, 4, 32]);
    const model = new OneStepRestorer(vae, unet, ctx);
    const frozen = [...vae.store.params.values(), ...unet.store.params.values()].map((p) => p.variable);
    const snapshot = frozen.map((v) => v.dataSync().slice());
    const trainable = lora.trainableVariables();
    const before = trainable.map((v) => v.dataSync().slice());
    const losses: number[] = [];
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.abs(tf.sub(model.run(lq), hq))) as tf.Scalar, trainable);
      tf.tidy(() => {
        for (const v of trainable) v.assign(tf.sub(v, tf.mul(grads[v.name] as tf.Tensor, 0.05)));
      });
      losses.push(value.dataSync()[0] as number);
      tf.dispose([value, ...Object.values(grads)]);
    };
    await assertTensorCountFlat(step, { warmup: 1, steps: 2, label: 'one-step restorer training step' });
    frozen.forEach((v, i) => assert.deepEqual(v.dataSync(), snapshot[i], `frozen weight ${v.name} changed`));
    const changed = trainable.filter((v, i) => v.dataSync().some((x, j) => x !== (before[i] as Float32Array)[j])).length;
    assert.ok(changed > trainable.length / 2, `only ${changed}/${trainable.length} LoRA tensors changed`);
    assert.ok(losses.every(Number.isFinite));
    tf.dispose([lq, hq, ctx]);
    lora.dispose();
    vae.dispose();
    unet.dispose();
  });

  it('an attention-map loss alone reaches the cross-attention LoRA, and none does once the map is detached (SCL)', () => {
    assertGradientsRegistered(['Mean', 'Conv2D', 'Erf', 'Tile', 'BatchMatMul', 'Softmax']);
    const unet = new UNet2DConditionModel(cfg<UNetConfig>('unet'), 2);
    unet.store.markTrainable(['conv_in\\..*'], 'test');
    const lora = new LoraModel(unet.store, 3);
    lora.add('seg', { r: 2, alpha: 2, targetModules: ['to_q', 'to_k'], initB: 'gaussian', initBStd: 0.01 });
    const x = tf.randomNormal([1, 8, 8, 4], 0, 1, 'float32', 1) as tf.Tensor4D;
    const ctx = tf.randomNormal([1, 4, 32], 0, 1, 'float32', 2) as tf.Tensor3D;
    const mask = tf.randomUniform([1, 64, 1], 0, 1, 'float32', 3);
    const vars = [...lora.trainableVariables(), ...unet.store.trainableVariables()];
    const attnK = lora.adapters.get('seg')?.layers.get('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k');
    const convIn = unet.store.params.get('conv_in.weight')?.variable;
    assert.ok(attnK && convIn);
    /** max |grad| per variable of `loss(out)`; `detach` cuts the captured attention map off the graph. */
    const gradNorms = (loss: (attn: tf.Tensor, feat: tf.Tensor) => tf.Scalar, detach: boolean) => {
      const kept: tf.Tensor[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const out = unet.runWithTaps(x, 1, ctx, { taps: ['up_blocks.1'], captureAttention: { layers: ['down_blocks\\.0\\..*attn2'], mode: 'mean' } });
        kept.push(...out.features.values(), ...out.attention.values());
        const attn = [...out.attention.values()][0] as tf.Tensor; // [1, 64, 4]
        // 0 * sum(vars) keeps every variable connected (variableGrads refuses a loss that reaches
        // none) and adds exactly 0 to each gradient
        const zero = tf.mul(0, tf.addN(vars.map((v) => tf.sum(v))));
        // (tfjs has no stopGradient: a tensor rebuilt from the values is off the tape)
        return tf.add(loss(detach ? tf.tensor(attn.dataSync(), attn.shape) : attn, out.features.get('up_blocks.1') as tf.Tensor), zero) as tf.Scalar;
      }, vars);
      const norms = Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0] as number)]));
      tf.dispose([value, ...kept, ...Object.values(grads)]);
      return norms;
    };
    // SCL's term: the captured map of token 1 against a mask, nothing else in the loss
    const scl = (attn: tf.Tensor) => tf.mean(tf.square(tf.sub(tf.slice(attn, [0, 0, 1], [1, 64, 1]), mask))) as tf.Scalar;
    const live = gradNorms(scl, false);
    assert.ok(live[attnK.A.name] > 1e-6 && live[attnK.B.name] > 1e-6, `the attention-map loss reaches the to_k LoRA: |dA| ${live[attnK.A.name]}, |dB| ${live[attnK.B.name]}`);
    const detached = gradNorms(scl, true);
    // the control: with the map detached the same loss gives the LoRA exactly nothing, so the
    // gradient above came through the attention map and no other way
    assert.equal(detached[attnK.A.name], 0, 'detached map: to_k LoRA A gets no gradient');
    assert.equal(detached[attnK.B.name], 0, 'detached map: to_k LoRA B gets no gradient');
    // tapped features (RASS losses) reach conv_in, which was marked trainable
    const feat = gradNorms((_a, f) => tf.mean(tf.square(f)) as tf.Scalar, false);
    assert.ok(feat[convIn.name] > 0, 'a tapped-feature loss reaches conv_in (marked trainable)');
    tf.dispose([x, ctx, mask]);
    lora.dispose();
    unet.dispose();
  });
});
