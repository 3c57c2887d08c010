import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend, type BackendName } from '../../../framework/engine/backend.js';
import { readSafetensors, toFloat32 } from '../../../framework/engine/safetensors.js';
import { LoraModel } from '../../../registry/adapters/lora/lora.js';
import { loadUNet } from '../../../registry/backbones/sd/pretrained.js';
import type { UNet2DConditionModel } from '../../../registry/backbones/sd/unet.js';
import { FIXTURES, TINY_SD, assertClose, fixture, maxAbsDiff } from '../backbones/_fixtures.js';

const TOL = 1e-4;

function run(unet: UNet2DConditionModel): tf.Tensor4D {
  return unet.forward(fixture('unet.sample') as tf.Tensor4D, fixture('unet.timesteps') as tf.Tensor1D, fixture('unet.context') as tf.Tensor3D).sample;
}

for (const backend of ['cpu', 'wasm', ...(process.env.RASS_NATIVE_AVAILABLE === '1' ? ['tensorflow'] : [])] as BackendName[]) {
  describe(`LoRA vs peft on the tiny UNet (${backend})`, () => {
    before(async () => {
      await useBackend(backend);
      fixture('unet.out');
    });

    it('a peft-saved adapter loads and reproduces peft unmerged, merged, unmerged again and disabled', () => {
      const unet = loadUNet(TINY_SD);
      const lora = new LoraModel(unet.store);
      lora.load(join(FIXTURES, 'peft'), 'sr');
      const check = (want: string, what: string) => {
        const y = run(unet);
        assertClose(y, fixture(want), TOL, what);
        y.dispose();
      };
      check('peft.out', 'unmerged');
      lora.merge();
      check('peft.merged_out', 'merged');
      lora.unmerge();
      check('peft.out', 'after unmerge');
      lora.setEnabled('sr', false);
      check('unet.out', 'disabled adapter = base model');
      lora.setEnabled('sr', true);
      lora.mergeAndUnload();
      assert.equal(lora.adapters.size, 0);
      check('peft.merged_out', 'merge-and-unload');
      unet.dispose();
    });

    it("an adapter saved by this project gives peft's own output for it (peft loaded the file in make_fixtures.py)", () => {
      const unet = loadUNet(TINY_SD);
      const lora = new LoraModel(unet.store);
      lora.load(join(FIXTURES, 'ts-adapter'), 'ts');
      const e = readSafetensors(join(FIXTURES, 'ts-adapter', 'peft_output.safetensors')).tensors.get('out');
      assert.ok(e, 'peft_output.safetensors has no "out"');
      const ref = tf.tensor(toFloat32(e), e.shape);
      assert.ok(maxAbsDiff(ref, fixture('unet.out')) > 1e-3, "peft's output must differ from the base model's");
      const y = run(unet);
      assertClose(y, ref, TOL, 'ts-adapter output vs peft');
      tf.dispose([y, ref]);
      lora.dispose();
      unet.dispose();
    });

    it('save -> load round trip in PEFT format gives the same output; counts are reported', () => {
      const unet = loadUNet(TINY_SD);
      const lora = new LoraModel(unet.store, 5);
      lora.add('a', { r: 2, alpha: 4, targetModules: ['to_q', 'to_v', 'conv2'], initB: 'gaussian', initBStd: 0.1 });
      const y1 = run(unet);
      const base = fixture('unet.out');
      assert.ok(maxAbsDiff(y1, base) > 1e-3, 'adapter with non-zero B must change the output');
      const dir = mkdtempSync(join(tmpdir(), 'lora-'));
      lora.save(dir, 'a');
      const { trainable, total } = lora.counts();
      assert.equal(trainable, lora.trainableVariables().reduce((s, v) => s + v.size, 0));
      assert.equal(total, unet.store.count() + trainable);
      lora.remove('a');
      const y0 = run(unet);
      assertClose(y0, base, TOL, 'removing the adapter restores the base output');
      lora.load(dir, 'b');
      const y2 = run(unet);
      assertClose(y2, y1, 1e-6, 'reloaded adapter');
      tf.dispose([y0, y1, y2]);
      rmSync(dir, { recursive: true });
      lora.dispose();
      unet.dispose();
    });
  });
}
