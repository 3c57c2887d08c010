/**
 * PEFT LoraConfig options (issue 22), both directions, on the tiny UNet:
 *  - peft-options/<case>/: adapters peft 0.21 made and saved (make_fixtures.py) with its unmerged
 *    and merged outputs; we load them and match, and what we save back holds the same tensors
 *    and options.
 *  - ts-options/<case>/: adapters this project saved (save-adapter.ts); peft loaded each (failing
 *    unless it took up every tensor) and recorded its output, which we match after loading.
 *  - options this project does not reproduce are refused by a UserError naming field and value.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../../framework/engine/backend.js';
import { readSafetensors, toFloat32 } from '../../../framework/engine/safetensors.js';
import { UserError } from '../../../framework/errors.js';
import { LoraModel } from '../../../registry/adapters/lora/lora.js';
import { PEFT_FIELDS } from '../../../registry/adapters/lora/peft-format.js';
import { loraPlugin, type LoraAdapter } from '../../../registry/adapters/lora/plugin.js';
import { loadUNet } from '../../../registry/backbones/sd/pretrained.js';
import type { UNet2DConditionModel } from '../../../registry/backbones/sd/unet.js';
import { FIXTURES, TINY_SD, assertClose, fixture } from '../backbones/_fixtures.js';

const TOL = 1e-4;
const PEFT_CASES = ['exclude', 'exclude-regex', 'modules-to-save', 'layers', 'layers-default', 'patterns', 'lora-bias', 'rslora'];
const TS_CASES = ['exclude', 'exclude-regex', 'modules-to-save', 'save-outside', 'layers', 'patterns', 'lora-bias'];

function run(unet: UNet2DConditionModel): tf.Tensor4D {
  return unet.forward(fixture('unet.sample') as tf.Tensor4D, fixture('unet.timesteps') as tf.Tensor1D, fixture('unet.context') as tf.Tensor3D).sample;
}

function reference(dir: string, key: string): tf.Tensor {
  const e = readSafetensors(join(dir, 'peft_output.safetensors')).tensors.get(key);
  assert.ok(e, `${dir}/peft_output.safetensors has no "${key}"`);
  return tf.tensor(toFloat32(e), e.shape);
}

function check(unet: UNet2DConditionModel, want: tf.Tensor, what: string): void {
  const y = run(unet);
  assertClose(y, want, TOL, what);
  y.dispose();
}

describe('PEFT LoraConfig options vs peft 0.21 (tiny UNet, wasm)', () => {
  before(async () => {
    // wasm: about 10x faster than the cpu reference here; lora-peft.test.ts runs the same LoRA code on both
    await useBackend('wasm');
    fixture('unet.out');
  });

  it('the fixture lists match the folders (no case left untested)', () => {
    assert.deepEqual(readdirSync(join(FIXTURES, 'peft-options')).sort(), [...PEFT_CASES].sort());
    assert.deepEqual(readdirSync(join(FIXTURES, 'ts-options')).sort(), [...TS_CASES].sort());
  });

  for (const c of PEFT_CASES) {
    it(`peft -> ours: ${c} loads and reproduces peft unmerged, disabled, merged, removed; saving it back writes peft's tensors`, () => {
      const dir = join(FIXTURES, 'peft-options', c);
      const unet = loadUNet(TINY_SD);
      const before = unet.store.params.get('conv_in.weight')?.variable.dataSync().slice() as Float32Array;
      const lora = new LoraModel(unet.store);
      lora.load(dir, c);
      const out = reference(dir, 'out');
      const merged = reference(dir, 'merged_out');
      check(unet, out, `${c} unmerged`);
      // the outputs must tell the cases apart from the base model, or matching them proves nothing
      assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(out, fixture('unet.out')))).dataSync()[0] as number) > 1e-3, `${c}: the adapter does not change the output`);
      lora.setEnabled(c, false);
      check(unet, fixture('unet.out'), `${c} disabled = base model`);
      lora.setEnabled(c, true);

      const tmp = mkdtempSync(join(tmpdir(), 'peft-opt-'));
      lora.save(tmp, c);
      const theirs = readSafetensors(join(dir, 'adapter_model.safetensors')).tensors;
      const ours = readSafetensors(join(tmp, 'adapter_model.safetensors')).tensors;
      assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort(), `${c}: saved keys`);
      for (const [k, e] of theirs) {
        const a = toFloat32(e);
        const b = toFloat32(ours.get(k) as typeof e);
        assert.deepEqual(ours.get(k)?.shape, e.shape, `${c}: ${k} shape`);
        let d = 0;
        for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
        assert.ok(d === 0, `${c}: saved ${k} differs from peft's by ${d}`);
      }
      const cfgOf = (p: string) => JSON.parse(readFileSync(join(p, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      const [tc, oc] = [cfgOf(dir), cfgOf(tmp)];
      for (const k of ['r', 'lora_alpha', 'target_modules', 'exclude_modules', 'modules_to_save', 'layers_to_transform', 'layers_pattern', 'rank_pattern', 'alpha_pattern', 'lora_bias', 'use_rslora']) {
        const norm = (v: unknown) => (Array.isArray(v) ? [...v].sort() : v);
        assert.deepEqual(norm(oc[k]), norm(tc[k]), `${c}: saved ${k}`);
      }
      rmSync(tmp, { recursive: true });

      lora.merge();
      check(unet, merged, `${c} merged`);
      // (each forward costs seconds: unmerge + remove are checked by one comparison with the base)
      lora.unmerge();
      lora.remove(c);
      check(unet, fixture('unet.out'), `${c} unmerged and removed = base model`);
      const after = unet.store.params.get('conv_in.weight')?.variable.dataSync() as Float32Array;
      assert.deepEqual([...after], [...before], `${c}: removing the adapter restores conv_in`);
      tf.dispose([out, merged]);
      unet.dispose();
    });
  }

  for (const c of TS_CASES) {
    it(`ours -> peft: ${c} as saved by this project gives peft's own output for it`, () => {
      const dir = join(FIXTURES, 'ts-options', c);
      const unet = loadUNet(TINY_SD);
      const lora = new LoraModel(unet.store);
      lora.load(dir, c);
      const want = reference(dir, 'out');
      assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(want, fixture('unet.out')))).dataSync()[0] as number) > 1e-3, `${c}: the adapter does not change peft's output`);
      check(unet, want, `${c} vs peft`);
      want.dispose();
      lora.dispose();
      unet.dispose();
    });
  }

  it('save-outside: modules trained outside the adapter (RASS conv_in) are saved as PEFT modules_to_save and restored by loading', () => {
    const dir = join(FIXTURES, 'ts-options', 'save-outside');
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(cfg.modules_to_save, ['conv_in']);
    const keys = [...readSafetensors(join(dir, 'adapter_model.safetensors')).tensors.keys()];
    assert.ok(keys.includes('base_model.model.conv_in.weight') && keys.includes('base_model.model.conv_in.bias'), keys.slice(0, 4).join(', '));
    // conv_in of the base differs from the saved one, so the ts-options test above only passes if loading restored it
    const unet = loadUNet(TINY_SD);
    const lora = new LoraModel(unet.store);
    const w0 = unet.store.params.get('conv_in.weight')?.variable.dataSync().slice() as Float32Array;
    lora.load(dir, 'x');
    const w1 = unet.store.params.get('conv_in.weight')?.variable.dataSync() as Float32Array;
    assert.ok(w0.some((v, i) => Math.abs(v - (w1[i] as number)) > 1e-3), 'loading replaced conv_in');
    // the save path RASS uses (conv_in trained outside the adapter) writes what peft took up from this file
    lora.add('y', { r: 2, alpha: 2, targetModules: ['to_q'] });
    const tmp = mkdtempSync(join(tmpdir(), 'save-outside-'));
    lora.save(tmp, 'y', { modulesToSave: ['conv_in'] });
    const theirs = readSafetensors(join(dir, 'adapter_model.safetensors')).tensors;
    const ours = readSafetensors(join(tmp, 'adapter_model.safetensors')).tensors;
    for (const k of ['base_model.model.conv_in.weight', 'base_model.model.conv_in.bias']) {
      assert.deepEqual(ours.get(k)?.shape, theirs.get(k)?.shape, k);
      assert.deepEqual([...toFloat32(ours.get(k) as never)], [...toFloat32(theirs.get(k) as never)], `${k} as saved`);
    }
    assert.deepEqual((JSON.parse(readFileSync(join(tmp, 'adapter_config.json'), 'utf8')) as { modules_to_save: unknown }).modules_to_save, ['conv_in']);
    rmSync(tmp, { recursive: true });
    lora.dispose();
    unet.dispose();
  });

  it('save-outside with a LoRA layer on the saved module (RASS: Seg LoRA on conv_in, conv_in trained): the merged copy is the same model', () => {
    const unet = loadUNet(TINY_SD);
    const lora = new LoraModel(unet.store, 3);
    lora.add('s', { r: 2, alpha: 4, targetModules: ['to_q', 'conv_in'], initB: 'gaussian', initBStd: 0.1 });
    const w = (unet.store.params.get('conv_in.weight') as { variable: tf.Variable }).variable;
    const orig = tf.clone(w);
    tf.tidy(() => w.assign(tf.add(w, tf.mul(tf.randomNormal(w.shape, 0, 1, 'float32', 5), 0.05)))); // "trained"
    const inMemory = run(unet);
    const tmp = mkdtempSync(join(tmpdir(), 'save-outside-lora-'));
    lora.save(tmp, 's', { modulesToSave: ['conv_in'] });
    lora.remove('s');
    w.assign(orig);
    orig.dispose();
    const loaded = lora.load(tmp, 's');
    assert.ok(!loaded.layers.has('conv_in') && loaded.layers.size > 0, 'peft semantics: no LoRA layer inside a modules_to_save module');
    check(unet, inMemory, 'in memory vs saved and loaded');
    tf.dispose(inMemory);
    rmSync(tmp, { recursive: true });
    lora.dispose();
    unet.dispose();
  });
});

describe('PEFT options this project does not reproduce are refused by name', () => {
  before(async () => {
    await useBackend('cpu');
  });
  const refuse: [string, unknown, RegExp][] = [
    ['use_dora', true, /use_dora=true .*DoRA/],
    ['bias', 'all', /bias="all"/],
    ['fan_in_fan_out', true, /fan_in_fan_out=true/],
    ['init_lora_weights', 'pissa', /init_lora_weights="pissa"/],
    ['target_modules', 'all-linear', /target_modules="all-linear"/],
    ['layer_replication', [[0, 1]], /layer_replication=\[\[0,1\]\]/],
    ['target_parameters', ['mlp.experts'], /target_parameters=\["mlp.experts"\]/],
    ['loftq_config', { loftq_bits: 4 }, /loftq_config=\{"loftq_bits":4\}/],
    ['trainable_token_indices', [1, 2], /trainable_token_indices=\[1,2\]/],
    ['use_qalora', true, /use_qalora=true/],
    ['a_future_option', 3, /a_future_option=3 .*unknown/],
    ['rank_pattern', { to_q: 0 }, /rank_pattern.to_q=0/],
  ];
  for (const [field, value, re] of refuse) {
    it(`${field}=${JSON.stringify(value)}`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'peft-refuse-'));
      cpSync(join(FIXTURES, 'peft'), dir, { recursive: true });
      const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      cfg[field] = value;
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(cfg));
      const unet = loadUNet(TINY_SD);
      const lora = new LoraModel(unet.store);
      assert.throws(
        () => lora.load(dir, 'x'),
        (e: unknown) => e instanceof UserError && re.test(e.message) && e.message.includes('adapter_config.json'),
      );
      assert.equal(lora.adapters.size, 0);
      unet.dispose();
      rmSync(dir, { recursive: true });
    });
  }

  it('empty and default values of refused fields load (peft writes them on every adapter)', () => {
    const unet = loadUNet(TINY_SD);
    const lora = new LoraModel(unet.store);
    lora.load(join(FIXTURES, 'peft'), 'p'); // its config has use_dora false, bias none, loftq_config {}, ...
    assert.equal(lora.adapters.size, 1);
    lora.dispose();
    unet.dispose();
  });
});

describe('the PEFT field list and the adapter/lora plugin options', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('every field peft 0.21 writes is known: implemented, ignored or refused (docs/peft-adapters.md lists them)', () => {
    const written = Object.keys(JSON.parse(readFileSync(join(FIXTURES, 'peft', 'adapter_config.json'), 'utf8')) as object);
    const known = new Set([...PEFT_FIELDS.implemented, ...PEFT_FIELDS.ignored, ...PEFT_FIELDS.refused]);
    assert.deepEqual(written.filter((k) => !known.has(k)), []);
    const doc = readFileSync(join(process.cwd(), 'docs', 'peft-adapters.md'), 'utf8');
    assert.deepEqual(written.filter((k) => !doc.includes(`\`${k}\``)), [], 'fields missing from docs/peft-adapters.md');
  });

  it('the adapter/lora plugin options select the same layers and ranks as the saved PEFT config', async () => {
    const unet = loadUNet(TINY_SD);
    const quiet = { info: () => {}, warn: () => {}, debug: () => {} };
    const opts = {
      name: 'p', r: 3, alpha: 6, dropout: 0, init: 'kaiming', init_b: 'zero', use_rslora: false, lora_bias: true,
      target_modules: ['to_q', 'to_out.0', 'conv2'], exclude_modules: '.*attentions\\.1\\..*attn2\\..*', rank_pattern: { conv2: 5 }, alpha_pattern: { to_q: 1.5 },
      layers_to_transform: [1], layers_pattern: 'up_blocks', modules_to_save: ['conv_in'],
    };
    const adapter = (await loraPlugin.create(opts as never, { path: 'a', seed: 0, log: quiet, services: {}, resolvePath: (p: string) => p } as never)) as LoraAdapter;
    adapter.attach(unet.store);
    const a = adapter.model?.adapters.get('p');
    assert.ok(a);
    // up_blocks.1 only (layers_to_transform): to_q and to_out.0 of its 2 attentions but the excluded attentions.1 attn2, and its 2 resnets' conv2
    assert.deepEqual([...a.layers.keys()].map((k) => k.replace(/^up_blocks\.1\./, '')).sort(), [
      'attentions.0.transformer_blocks.0.attn1.to_out.0', 'attentions.0.transformer_blocks.0.attn1.to_q', 'attentions.0.transformer_blocks.0.attn2.to_out.0', 'attentions.0.transformer_blocks.0.attn2.to_q',
      'attentions.1.transformer_blocks.0.attn1.to_out.0', 'attentions.1.transformer_blocks.0.attn1.to_q',
      'resnets.0.conv2', 'resnets.1.conv2',
    ]);
    for (const [k, l] of a.layers) {
      assert.equal(l.r, k.endsWith('conv2') ? 5 : 3, `${k} rank`);
      assert.equal(l.scale, k.endsWith('to_q') ? 1.5 / 3 : k.endsWith('conv2') ? 6 / 5 : 2, `${k} scale`);
      assert.ok(l.bias, `${k} has a LoRA bias`);
    }
    assert.deepEqual([...a.saved.keys()].sort(), ['conv_in.bias', 'conv_in.weight']);
    assert.ok(Object.keys(adapter.namedVariables()).includes('p.conv_in.weight'));
    adapter.dispose();
    unet.dispose();
  });
});
