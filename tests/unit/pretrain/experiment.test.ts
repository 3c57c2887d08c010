/**
 * experiment/pretrain-ldm end to end at toy size (native backend, else wasm): the run trains both phases
 * (losses logged per step), exports a diffusers folder that the backbone plugins load back
 * (`tiny-shapes` preset with `path`), writes decodable sample/reconstruction grids and a
 * provenance file; a run stopped mid-UNet-phase resumes to the uninterrupted run's result.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { runExperiment, type RunnerOptions } from '../../../framework/runner/runner.js';
import { readJournal } from '../../../framework/tracking/journal.js';
import type { TrackerFactory } from '../../../framework/tracking/tracker.js';
import { PluginRegistry } from '../../../framework/plugins/registry.js';
import type { PluginContext } from '../../../framework/api.js';
import { registryPackage } from '../../../registry/index.js';
import { experimentsPackage } from '../../../experiments/index.js';
import { autoencoderKl, clipText, unet2dCondition } from '../../../registry/backbones/sd/plugins.js';
import type { AutoencoderKL } from '../../../registry/backbones/sd/vae.js';
import type { UNet2DConditionModel } from '../../../registry/backbones/sd/unet.js';
import type { ClipTextModel } from '../../../registry/backbones/sd/clip.js';
import { byteLevelClipTokenizer } from '../../../registry/backbones/sd/tokenizer.js';
import { streams, tempDir } from '../../integration/runner/helpers.js';
import { zeroResidualBranches } from '../../../experiments/pretrain-ldm/train.js';
import { TINY_VAE } from '../../../registry/backbones/sd/presets.js';

const VAE_STEPS = 3;
const UNET_STEPS = 6;
const CONFIG = `
name: pretrain-toy
seed: 3
backend: auto
experiment:
  type: experiment/pretrain-ldm
  dataset: { type: dataset/shapes, length: 14, height: 32, width: 32, seed: 5 }
  holdout: 4
  vae_phase: { steps: ${VAE_STEPS}, batch_size: 2, crop: 16, warmup: 1, eval_every: 2 }
  unet_phase: { steps: ${UNET_STEPS}, batch_size: 2, warmup: 1 }
  checkpoint_every: 2
  sample: { prompts: ['background, checker', ''], per_prompt: 2, steps: 2, guidance_scale: 2 }
  eval_timesteps: [100, 900]
`;

function registry(): PluginRegistry {
  const r = new PluginRegistry();
  r.loadPackage(registryPackage);
  r.loadPackage(experimentsPackage);
  return r;
}

function opts(dir: string, over: Partial<RunnerOptions>): RunnerOptions {
  const s = streams();
  return { registry: registry(), cwd: dir, env: {}, stdout: s.stdout, stderr: s.stderr, trackerFactories: [], sets: [`runs_dir=${join(dir, 'runs')}`], configFile: join(dir, 'pretrain.yaml'), ...over };
}

function abortAfter(n: number, controller: AbortController): TrackerFactory {
  return async () => {
    let seen = 0;
    return { name: 'abort-after', onAppend: () => void (++seen === n && controller.abort()), flush: async () => {}, close: async () => {} };
  };
}

const pctx = (): PluginContext => ({ path: 'model.x', seed: 0, log: { info: () => {}, warn: () => {}, debug: () => {} }, resolvePath: (p) => resolve(p), build: () => Promise.reject(new Error('unused')), services: {} });

describe('experiment/pretrain-ldm (toy size)', () => {
  const dir = tempDir('pretrain');
  writeFileSync(join(dir, 'pretrain.yaml'), CONFIG);
  let full: Awaited<ReturnType<typeof runExperiment>>;

  before(async () => {
    full = await runExperiment(opts(dir, {}));
  });

  it('trains both phases, logging losses per step', () => {
    assert.equal(full.status, 'FINISHED');
    const { events } = readJournal(join(full.dir, 'journal.jsonl'));
    const steps = (k: string) => events.flatMap((e) => (e.type === 'metrics' && e.values[k] !== undefined ? [e.step] : []));
    assert.deepEqual(steps('vae/l1'), [1, 2, 3]);
    assert.deepEqual(steps('unet/loss'), [4, 5, 6, 7, 8, 9]);
    // eval_every 2: the held-out PSNR at step 2 during the phase, the end-of-phase value at 3,
    // and the run's final metrics at the last step
    assert.deepEqual(steps('vae/psnr_heldout'), [2, 3, 9]);
    for (const k of ['vae/psnr_heldout', 'vae/scaling_factor', 'eval/eps_mse_cond', 'eval/eps_mse_uncond']) assert.ok(Number.isFinite(full.metrics[k]), `${k}: ${full.metrics[k]}`);
  });

  it('exports a diffusers folder the backbone plugins load back, with grids and provenance', async () => {
    const model = join(full.dir, 'artifacts', 'model');
    for (const f of ['model_index.json', 'unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'vae/config.json', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/config.json', 'text_encoder/model.safetensors', 'tokenizer/vocab.json', 'tokenizer/merges.txt', 'scheduler/scheduler_config.json', 'provenance.json']) {
      assert.ok(existsSync(join(model, f)), `missing ${f}`);
    }
    const index = JSON.parse(readFileSync(join(model, 'model_index.json'), 'utf8'));
    assert.deepEqual(index.unet, ['diffusers', 'UNet2DConditionModel']);
    assert.deepEqual(index.tokenizer, ['transformers', 'CLIPTokenizer']);
    const opt = { preset: 'tiny-shapes', path: model, trainable: [] } as never;
    const vae = (await autoencoderKl.create(opt, pctx())) as AutoencoderKL;
    const unet = (await unet2dCondition.create(opt, pctx())) as UNet2DConditionModel;
    const clip = (await clipText.create(opt, pctx())) as ClipTextModel;
    // the measured scaling factor travels in vae/config.json
    assert.ok(Math.abs(vae.scalingFactor - full.metrics['vae/scaling_factor']) < 1e-9, `${vae.scalingFactor} vs ${full.metrics['vae/scaling_factor']}`);
    assert.equal(unet.config.sample_size, 16, 'the tiny VAE downsamples 2x: 32x32 images, 16x16 latents');
    // the saved tokenizer is the tiny byte-level one the run trained with
    const tiny = byteLevelClipTokenizer();
    for (const p of ['background, stripes-h, noise', 'Zig-Zag ü!', '']) assert.deepEqual(clip.tokenizer?.encode(p, { pad: true }), tiny.encode(p, { pad: true }), p);
    [vae, unet, clip].forEach((m) => m.dispose());

    const grid = await sharp(join(model, 'ddim_samples.png')).metadata();
    assert.deepEqual([grid.width, grid.height], [2 * 32 + 3 * 2, 2 * 32 + 3 * 2], 'one row per prompt, per_prompt columns');
    const recon = await sharp(join(model, 'vae_reconstructions.png')).metadata();
    assert.deepEqual([recon.width, recon.height], [4 * 32 + 5 * 2, 2 * 32 + 3 * 2], 'held-out images over their reconstructions');
    const prov = JSON.parse(readFileSync(join(model, 'provenance.json'), 'utf8'));
    assert.equal(prov.seed, 3);
    assert.equal(prov.run_id, full.runId);
    assert.match(prov.config_sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(prov.steps, { vae: VAE_STEPS, unet: UNET_STEPS });
    assert.deepEqual(prov.ddim_samples.rows, ['background, checker', '(empty prompt)']);
    assert.ok(Math.abs(prov.final['eval/eps_mse_cond'] - full.metrics['eval/eps_mse_cond']) < 1e-5);
  });

  it('a run stopped in the UNet phase resumes to the uninterrupted result', async () => {
    // stop early in the UNet phase (the tracker sees the appends after it is attached, so the
    // stop lands a few events after the journal index of UNet step 2)
    const { events } = readJournal(join(full.dir, 'journal.jsonl'));
    const n = events.findIndex((e) => e.type === 'metrics' && e.step === VAE_STEPS + 2 && e.values['unet/loss'] !== undefined) + 1;
    const tensorsBefore = tf.memory().numTensors;
    const controller = new AbortController();
    const stopped = await runExperiment(opts(dir, { signal: controller.signal, trackerFactories: [abortAfter(n, controller)] }));
    assert.equal(stopped.status, 'KILLED');
    const afterStop = tf.memory().numTensors - tensorsBefore;
    const latest = readFileSync(join(stopped.dir, 'checkpoints', 'LATEST'), 'utf8').trim();
    assert.match(latest, /^unet-00000[1-5]$/, 'stopped mid-UNet-phase with a checkpoint');
    const resumed = await runExperiment(opts(dir, { configFile: undefined, sets: [], resume: stopped.dir }));
    assert.equal(resumed.status, 'FINISHED');
    // a stopped and a resumed run (models, optimiser slots, prompt cache) leave no tensors behind
    assert.equal(tf.memory().numTensors, tensorsBefore, `tensor count back to where it was (after the stopped run: ${afterStop})`);
    const after = readJournal(join(stopped.dir, 'journal.jsonl')).events;
    const unetSteps = after.flatMap((e) => (e.type === 'metrics' && e.values['unet/loss'] !== undefined ? [e.step] : []));
    assert.deepEqual(unetSteps, [4, 5, 6, 7, 8, 9], 'every UNet step exactly once');
    for (const k of ['vae/psnr_heldout', 'vae/scaling_factor', 'eval/eps_mse_cond', 'eval/eps_mse_uncond']) {
      assert.ok(Math.abs(resumed.metrics[k] - full.metrics[k]) <= 1e-5 * Math.max(1, Math.abs(full.metrics[k])), `${k}: resumed ${resumed.metrics[k]} vs uninterrupted ${full.metrics[k]}`);
    }
    const lossAt = (ev: typeof after, s: number) => ev.flatMap((e) => (e.type === 'metrics' && e.step === s && e.values['unet/loss'] !== undefined ? [e.values['unet/loss']] : []))[0] as number;
    assert.ok(Math.abs(lossAt(after, 9) - lossAt(events, 9)) < 1e-5, 'the last step sees the same batch, noise and weights');
  });

  it('vae_phase.init zero-residual zeroes exactly the residual branches\' last layers (every block starts as its shortcut)', async () => {
    const vae = (await autoencoderKl.create({ preset: 'tiny', trainable: [] } as never, pctx())) as unknown as AutoencoderKL;
    const vars = Object.fromEntries([...vae.store.params].map(([k, p]) => [k, p.variable]));
    const before = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v.dataSync().slice()]));
    const zeroed = zeroResidualBranches(vars);
    // the tiny VAE: encoder layers_per_block resnets per down block + decoder layers_per_block + 1 per up block,
    // 2 mid-block resnets and 1 mid-block attention on each side; each branch end has a weight and a bias
    const blocks = TINY_VAE.down_block_types.length;
    const resnets = blocks * TINY_VAE.layers_per_block + blocks * (TINY_VAE.layers_per_block + 1) + 4;
    assert.equal(zeroed.length, 2 * (resnets + 2), zeroed.join(', '));
    assert.ok(zeroed.every((k) => /\.conv2\.(weight|bias)$|\.to_out\.0\.(weight|bias)$/.test(k)), zeroed.join(', '));
    for (const [k, v] of Object.entries(vars)) {
      const now = v.dataSync();
      if (zeroed.includes(k)) assert.ok(now.every((x) => x === 0), `${k} not zero`);
      else assert.deepEqual(now, before[k], `${k} changed`);
    }
    vae.dispose();
  });
});
