import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend, type BackendName } from '../../../framework/engine/backend.js';
import { loadClipText, loadUNet, loadVae } from '../../../registry/backbones/sd/pretrained.js';
import { disposeOutput } from '../../../registry/backbones/sd/unet.js';
import { TINY_SD, assertClose, fixture } from './_fixtures.js';

const TOL = 1e-4;

// native TensorFlow too when `npm test` built it (scripts/run-tests.mjs sets RASS_NATIVE_AVAILABLE)
for (const backend of ['cpu', 'wasm', ...(process.env.RASS_NATIVE_AVAILABLE === '1' ? ['tensorflow'] : [])] as BackendName[]) {
  describe(`diffusers parity on ${backend} (tiny models, fp32, <= ${TOL})`, () => {
    before(async () => {
      await useBackend(backend);
      fixture('unet.out'); // load the fixture tensors before anything counts tensors
    });

    it('UNet2DConditionModel: output and tapped down/mid/up block features', () => {
      const unet = loadUNet(TINY_SD);
      const start = tf.memory().numTensors;
      const taps = ['down_blocks.0', 'down_blocks.1', 'mid_block', 'up_blocks.0', 'up_blocks.1'];
      const out = unet.forward(fixture('unet.sample') as tf.Tensor4D, fixture('unet.timesteps') as tf.Tensor1D, fixture('unet.context') as tf.Tensor3D, { taps });
      assertClose(out.sample, fixture('unet.out'), TOL, 'unet output');
      for (const t of taps) assertClose(out.features.get(t) as tf.Tensor, fixture(`unet.tap.${t}`), TOL, `unet tap ${t}`);
      out.sample.dispose();
      disposeOutput(out);
      assert.equal(tf.memory().numTensors, start, 'forward with taps leaked tensors');
      unet.dispose();
    });

    it('UNet at a size that is not a multiple of the total stride (diffusers upsample_size)', () => {
      const unet = loadUNet(TINY_SD);
      const ctx = tf.slice(fixture('unet.context'), [0, 0, 0], [1, -1, -1]) as tf.Tensor3D;
      const out = unet.forward(fixture('unet.odd_sample') as tf.Tensor4D, 500, ctx);
      assertClose(out.sample, fixture('unet.odd_out'), TOL, 'odd-size unet output');
      tf.dispose([ctx, out.sample]);
      unet.dispose();
    });

    it('cross-attention probabilities match diffusers per head, and head-averaged', () => {
      const unet = loadUNet(TINY_SD);
      const layers = ['down_blocks.0.attentions.0.transformer_blocks.0.attn2', 'mid_block.attentions.0.transformer_blocks.0.attn2'];
      const args = [fixture('unet.sample') as tf.Tensor4D, fixture('unet.timesteps') as tf.Tensor1D, fixture('unet.context') as tf.Tensor3D] as const;
      const perHead = unet.forward(...args, { captureAttention: { layers: layers.map((l) => l.replace(/\./g, '\\.')), mode: 'per-head' } });
      const mean = unet.forward(...args, { captureAttention: { layers: ['.*attn2'], mode: 'mean' } });
      for (const l of layers) {
        const ref = fixture(`unet.attn.${l}`);
        assertClose(perHead.attention.get(l) as tf.Tensor, ref, 1e-5, `${l} per head`);
        const refMean = tf.mean(ref, 1);
        assertClose(mean.attention.get(l) as tf.Tensor, refMean, 1e-5, `${l} head mean`);
        refMean.dispose();
      }
      assert.equal(perHead.attention.size, 2, 'only the requested layers are captured');
      assert.equal(mean.attention.size, 4, 'all 4 cross-attention layers of the tiny UNet');
      assertClose(perHead.sample, fixture('unet.out'), TOL, 'output with capture');
      tf.dispose([perHead.sample, mean.sample]);
      disposeOutput(perHead);
      disposeOutput(mean);
      unet.dispose();
    });

    it('AutoencoderKL: posterior, encoder down-block features, decoder', () => {
      const vae = loadVae(TINY_SD);
      const enc = vae.encode(fixture('vae.image') as tf.Tensor4D, { taps: ['encoder.down_blocks.0', 'encoder.down_blocks.1'] });
      assertClose(enc.mean, fixture('vae.mean'), TOL, 'vae mean');
      assertClose(enc.logvar, fixture('vae.logvar'), TOL, 'vae logvar');
      for (const t of ['encoder.down_blocks.0', 'encoder.down_blocks.1']) assertClose(enc.features.get(t) as tf.Tensor, fixture(`vae.tap.${t}`), TOL, t);
      const dec = vae.decode(fixture('vae.mean') as tf.Tensor4D, { taps: ['decoder.up_blocks.0', 'decoder.up_blocks.1'] });
      assertClose(dec.sample, fixture('vae.decoded'), TOL, 'vae decoded');
      assert.deepEqual(dec.features.get('decoder.up_blocks.0')?.shape, [1, 32, 32, 64], 'decoder tap after the upsampler');
      assert.deepEqual(dec.features.get('decoder.up_blocks.1')?.shape, [1, 32, 32, 32]);
      tf.dispose([enc.mean, enc.logvar, dec.sample, ...enc.features.values(), ...dec.features.values()]);
      vae.dispose();
    });

    it('CLIPTextModel: last hidden state', () => {
      const clip = loadClipText(TINY_SD);
      const ids = tf.cast(fixture('clip.ids'), 'int32') as tf.Tensor2D;
      const out = clip.forward(ids);
      assertClose(out.lastHiddenState, fixture('clip.last_hidden_state'), TOL, 'clip last_hidden_state');
      tf.dispose([ids, out.lastHiddenState]);
      clip.dispose();
    });
  });
}
