/**
 * experiment/rass end to end on tiny random-init backbones, fed by an SCR run's adapter:
 * merging the SCR adapter gives the same model as keeping it unmerged (the first step's loss
 * agrees), leaving it out changes the model, the run trains Seg LoRA + conv_in + projections +
 * head, evaluates on degraded and clean inputs, saves a segmenter artifact, resumes exactly,
 * and bad input (unknown taps, a head that does not fit, labels beyond the head's classes, an
 * adapter for another UNet) fails before training with the names involved.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runExperiment, type RunnerOptions } from '../../../framework/runner/runner.js';
import { readJournal } from '../../../framework/tracking/journal.js';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors, toFloat32 } from '../../../framework/engine/safetensors.js';
import { buildNode } from '../../../framework/config/index.js';
import type { ComponentNode } from '../../../framework/api.js';
import { loadSegmenter } from '../../../experiments/rass/segmenter.js';
import { packageRoot } from '../../../framework/paths.js';
import { capturedStreams, fullRegistry } from '../../helpers/experiments.js';
import type { TrackerFactory } from '../../../framework/tracking/tracker.js';

const ROOT = packageRoot();
const RASS = join(ROOT, 'tests/fixtures/experiments/rass-tiny.yaml');
const SCR = join(ROOT, 'tests/fixtures/experiments/scr-tiny.yaml');

function opts(runsDir: string, over: Partial<RunnerOptions> = {}): RunnerOptions & { err: () => string } {
  const registry = fullRegistry();
  const { stdout, stderr, err } = capturedStreams();
  return { registry, cwd: ROOT, env: {}, stdout, stderr, trackerFactories: [], configFile: RASS, err, ...over, sets: [`runs_dir=${runsDir}`, ...(over.sets ?? [])] };
}

const metricEvents = (dir: string) => readJournal(join(dir, 'journal.jsonl')).events.flatMap((e) => (e.type === 'metrics' ? [e] : []));
const firstLoss = (dir: string) => metricEvents(dir).find((e) => e.step === 1)?.values.loss as number;

describe('experiment/rass (tiny, SCR adapter from an SCR run)', () => {
  const runs = mkdtempSync(join(tmpdir(), 'rass-rass-'));
  let scrAdapter = '';
  let scrRunId = '';
  let merged: Awaited<ReturnType<typeof runExperiment>>;
  const withScr = (merge: boolean) => [`experiment.scr_adapter={type: adapter/lora, name: scr, load: ${scrAdapter}}`, `experiment.merge_scr=${merge}`];

  before(async () => {
    const scr = await runExperiment(opts(runs, { configFile: SCR, sets: ['experiment.steps=2', 'experiment.eval_every=100'] }));
    assert.equal(scr.status, 'FINISHED');
    scrAdapter = join(scr.dir, 'artifacts/adapters/scr');
    scrRunId = scr.runId;
    merged = await runExperiment(opts(runs, { sets: withScr(true) }));
  });

  it('trains the Seg LoRA, conv_in, projections and head; evaluates degraded and clean inputs', () => {
    assert.equal(merged.status, 'FINISHED');
    for (const split of ['lq', 'hq']) {
      for (const k of ['miou', 'pacc', 'miou_mmseg', 'fwiou']) {
        const v = merged.metrics[`val_${split}/${k}`] as number;
        assert.ok(v >= 0 && v <= 100, `val_${split}/${k} = ${v}`);
      }
    }
    const events = readJournal(join(merged.dir, 'journal.jsonl')).events;
    const params = Object.assign({}, ...events.flatMap((e) => (e.type === 'params' ? [e.params] : [])));
    assert.equal(params['model.scr_adapter'], 'merged');
    // seg LoRA (67,344 on the tiny UNet) + conv_in (4*32*3*3 + 32)
    assert.equal(Number(params['model.backbone_trainable_parameters']), 67344 + 4 * 32 * 9 + 32);
    const steps = metricEvents(merged.dir).filter((e) => e.values.loss !== undefined);
    assert.deepEqual(steps.map((e) => e.step), [1, 2, 3, 4]);
    assert.ok(steps.every((e) => e.values['loss/loss_ce'] > 0 && e.values['loss/loss_mask'] > 0 && e.values['loss/loss_dice'] > 0));
  });

  it('saves the segmenter (Seg adapter in PEFT format, projections, head, conv_in) and the evaluation tables', () => {
    const art = join(merged.dir, 'artifacts');
    const w = readSafetensors(join(art, 'model/weights.safetensors'));
    const keys = [...w.tensors.keys()];
    assert.ok(keys.some((k) => k.startsWith('proj.unet.up_blocks.0')) && keys.some((k) => k.startsWith('head.')), keys.slice(0, 5).join(', '));
    assert.ok(!keys.some((k) => k.includes('lora') || k.startsWith('unet.conv_in')), `the adapter (with conv_in) is saved separately, in PEFT format: ${keys.filter((k) => !k.startsWith('proj.') && !k.startsWith('head.')).join(', ')}`);
    const peftCfg = JSON.parse(readFileSync(join(art, 'model/adapter_seg/adapter_config.json'), 'utf8'));
    assert.equal(peftCfg.peft_type, 'LORA');
    // conv_in, trained whole, is in the adapter as PEFT writes modules_to_save
    assert.deepEqual(peftCfg.modules_to_save, ['conv_in']);
    const ad = readSafetensors(join(art, 'model/adapter_seg/adapter_model.safetensors')).tensors;
    assert.deepEqual(ad.get('base_model.model.conv_in.weight')?.shape, [32, 4, 3, 3]);
    assert.deepEqual(ad.get('base_model.model.conv_in.bias')?.shape, [32]);
    const meta = JSON.parse(readFileSync(join(art, 'model/model.json'), 'utf8'));
    assert.deepEqual(meta.features, ['vae.encoder.down_blocks.1', 'unet.up_blocks.0', 'unet.up_blocks.1']);
    assert.equal(meta.scr_merged, true);
    for (const split of ['lq', 'hq']) {
      const per = readFileSync(join(art, `val_${split}/per_image.csv`), 'utf8').trim().split('\n');
      assert.equal(per.length, 1 + 3);
      const classes = readFileSync(join(art, `val_${split}/miou_per_class.csv`), 'utf8').trim().split('\n');
      assert.equal(classes.length, 1 + 9);
      assert.deepEqual([...readFileSync(join(art, `images/val_${split}_predictions.png`)).subarray(0, 4)], [137, 80, 78, 71]);
    }
  });

  it('rebuilding the segmenter restores the trained conv_in from the Seg adapter (PEFT modules_to_save)', async () => {
    const quiet = { info: () => {}, warn: () => {}, debug: () => {} };
    const registry = fullRegistry();
    const seg = await loadSegmenter(merged.dir, <T>(node: ComponentNode) => buildNode<T>(node, registry, { log: quiet, baseDir: ROOT }), 'test');
    try {
      const file = readSafetensors(join(merged.dir, 'artifacts/model/adapter_seg/adapter_model.safetensors')).tensors.get('base_model.model.conv_in.weight');
      assert.ok(file, 'the adapter carries conv_in');
      const w = seg.backbone.unet.store.params.get('conv_in.weight')?.variable as tf.Variable;
      const torchLayout = tf.tidy(() => Float32Array.from(tf.transpose(w, [3, 2, 0, 1]).dataSync()));
      assert.deepEqual([...torchLayout], [...toFloat32(file)]);
    } finally {
      seg.dispose();
    }
  });

  it('a merged SCR adapter is the same model as an unmerged one; no adapter is a different model', async () => {
    // the same adapter named by its run (from_run) instead of its folder
    const unmerged = await runExperiment(opts(runs, { sets: [`experiment.scr_adapter={type: adapter/lora, name: scr, from_run: ${scrRunId}}`, 'experiment.merge_scr=false', 'experiment.steps=1', 'experiment.val.splits=[lq]'] }));
    const none = await runExperiment(opts(runs, { sets: ['experiment.steps=1', 'experiment.val.splits=[lq]'] }));
    const a = firstLoss(merged.dir);
    const b = firstLoss(unmerged.dir);
    const c = firstLoss(none.dir);
    assert.ok(Math.abs(a - b) <= 1e-4 * Math.abs(a), `merged ${a} vs unmerged ${b}`);
    assert.ok(Math.abs(a - c) > 1e-3 * Math.abs(a), `the SCR adapter must change the model: ${a} vs none ${c}`);
    // experiment/seg-baseline (DT / FT) is RASS without the SCR prior: the same run as `none`
    const baseline = await runExperiment(opts(runs, { sets: ['experiment.type=experiment/seg-baseline', 'experiment.steps=1', 'experiment.val.splits=[lq]'] }));
    assert.equal(baseline.status, 'FINISHED');
    assert.equal(firstLoss(baseline.dir), c, 'seg-baseline first loss = RASS without an adapter');
    assert.equal(baseline.metrics['val_lq/miou'], none.metrics['val_lq/miou']);
    // and it has no SCR option to set
    await assert.rejects(runExperiment(opts(runs, { sets: ['experiment.type=experiment/seg-baseline', `experiment.scr_adapter={type: adapter/lora, name: scr, from_run: ${scrRunId}}`] })), /unknown key "scr_adapter"/);
  });

  it('a stopped run resumes to the same final metrics', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const controller = new AbortController();
    const hook: TrackerFactory = async (run) => ({
      name: 'stop-after-step-2',
      onAppend: () => {
        if (metricEvents(run.dir).some((e) => e.step === 2)) controller.abort();
      },
      flush: async () => {},
      close: async () => {},
    });
    const stopped = await runExperiment(opts(runs, { sets: withScr(true), signal: controller.signal, trackerFactories: [hook] }));
    assert.equal(stopped.status, 'KILLED');
    const resumed = await runExperiment({ ...opts(runs), configFile: undefined, sets: [], resume: stopped.runId, runsDir: runs });
    assert.equal(resumed.status, 'FINISHED');
    for (const k of ['val_lq/miou', 'val_hq/miou', 'val_lq/pacc']) assert.ok(Math.abs((resumed.metrics[k] as number) - (merged.metrics[k] as number)) < 1e-6, `${k}: ${resumed.metrics[k]} vs ${merged.metrics[k]}`);
    // a stopped and a resumed run leave no tensors behind (a sweep worker runs many in one process)
    assert.equal(tf.memory().numTensors, tensorsBefore, 'tensor count back to where it was');
  });

  it('bad input fails before training, naming what is wrong', async () => {
    const cases: [string[], RegExp][] = [
      [['experiment.features=[unet.up_blocks.7]'], /experiment\.features: unknown tap\(s\) unet\.up_blocks\.7; this backbone has: .*unet\.up_blocks\.1/],
      [['experiment.head.inChannels=[32, 32, 32, 16]'], /experiment\.head\.inChannels: \[32,32,32,16\] must all be projection_dim \(32\)/],
      [['experiment.head.numClasses=5', 'experiment.loss.numClasses=5'], /experiment\.head: the head has 5 classes but the training dataset has 9/],
      [[...withScr(true), 'experiment.backbone.unet.config={in_channels: 4, out_channels: 4, block_out_channels: [32, 32], down_block_types: [CrossAttnDownBlock2D, DownBlock2D], up_block_types: [UpBlock2D, CrossAttnUpBlock2D], layers_per_block: 1, cross_attention_dim: 32, attention_head_dim: 2, use_linear_projection: true, mid_block_type: UNetMidBlock2DCrossAttn, norm_num_groups: 32, norm_eps: 1e-5, flip_sin_to_cos: true, freq_shift: 0, sample_size: 16}'], /experiment\.scr_adapter: the SCR adapter does not fit this backbone's UNet .*does not fit the module/],
    ];
    cases.push([[`experiment.scr_adapter={type: adapter/lora, name: scr, from_run: ${merged.runId}}`], new RegExp(`experiment\\.scr_adapter\\.from_run: run ${merged.runId} has no artifact adapters/scr/adapter_config\\.json`)]);
    cases.push([['experiment.scr_adapter={type: adapter/lora, name: scr, from_run: no-such-run}'], /experiment\.scr_adapter\.from_run: run "no-such-run": no run with that id/]);
    for (const [sets, re] of cases) {
      await assert.rejects(runExperiment(opts(runs, { sets })), re);
    }
  });
});
