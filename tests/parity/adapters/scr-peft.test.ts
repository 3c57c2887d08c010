/**
 * The SCR adapter this project trains and saves (tests/fixtures/scr/adapter, written by an
 * experiment/scr run on the committed prior) loads with peft onto the diffusers UNet of
 * models/tiny-shapes, and diffusers + peft restore the same images as our one-step restorer
 * (scripts/fixtures/scr/make_restore_fixture.py wrote the reference). Also without the adapter.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before, after } from 'node:test';
import { join } from 'node:path';
import { useBackend, type BackendName } from '../../../framework/engine/backend.js';
import { readSafetensors, toFloat32 } from '../../../framework/engine/safetensors.js';
import { buildNode } from '../../../framework/config/index.js';
import { PluginRegistry } from '../../../framework/plugins/registry.js';
import { registryPackage } from '../../../registry/index.js';
import type { Adapter, OneStepRestorer } from '../../../framework/api.js';
import { assertClose } from '../backbones/_fixtures.js';

const DIR = join(process.cwd(), 'tests', 'fixtures', 'scr');
const TOL = 1e-4;
const quiet = { info: () => {}, warn: () => {}, debug: () => {} };

for (const backend of ['cpu', 'wasm', ...(process.env.RASS_NATIVE_AVAILABLE === '1' ? ['tensorflow'] : [])] as BackendName[]) {
  describe(`SCR adapter vs diffusers + peft on the tiny-shapes prior (${backend})`, () => {
    const ref = new Map<string, tf.Tensor>();
    before(async () => {
      await useBackend(backend);
      for (const [k, e] of readSafetensors(join(DIR, 'restore.safetensors')).tensors) ref.set(k, tf.tensor(toFloat32(e), e.shape));
    });
    after(() => tf.dispose([...ref.values()]));

    it('restores like peft with the adapter, and like diffusers without it', async () => {
      const registry = new PluginRegistry();
      registry.loadPackage(registryPackage);
      const restorer = await buildNode<OneStepRestorer>({ type: 'backbone/one-step', unet: { type: 'backbone/unet2d-condition', preset: 'tiny-shapes' }, vae: { type: 'backbone/autoencoder-kl', preset: 'tiny-shapes' }, text_encoder: { type: 'backbone/clip-text', preset: 'tiny-shapes' }, timestep: 999 }, registry, { log: quiet });
      const lq = ref.get('lq') as tf.Tensor4D;
      const ctx = ref.get('context') as tf.Tensor3D;
      const base = tf.tidy(() => restorer.run(lq, ctx).image);
      assertClose(base, ref.get('base') as tf.Tensor, TOL, 'zero-LoRA restorer vs diffusers');
      const adapter = await buildNode<Adapter>({ type: 'adapter/lora', name: 'scr', load: join(DIR, 'adapter') }, registry, { log: quiet });
      adapter.attach(restorer.unet.store);
      const restored = tf.tidy(() => restorer.run(lq, ctx).image);
      assertClose(restored, ref.get('restored') as tf.Tensor, TOL, 'SCR adapter vs peft');
      tf.dispose([base, restored]);
      adapter.dispose();
      restorer.dispose();
    });
  });
}
