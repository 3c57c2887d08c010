/**
 * experiment/scr end to end on tiny random-init backbones: the run trains the LoRA through
 * restoration + attention losses from a third-party package (composition through contracts),
 * records the zero-LoRA baseline at step 0, writes a PEFT adapter and images, keeps the tensor
 * count flat, resumes after a stop to the same final metrics, and refuses bad input before a
 * run directory exists.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { runExperiment, type RunnerOptions } from '../../../framework/runner/runner.js';
import { readJournal } from '../../../framework/tracking/journal.js';
import { readSafetensors, toFloat32 } from '../../../framework/engine/safetensors.js';
import type { TrackerFactory } from '../../../framework/tracking/tracker.js';
import { packageRoot } from '../../../framework/paths.js';
import { capturedStreams, fullRegistry } from '../../helpers/experiments.js';

const ROOT = packageRoot();
const CONFIG = join(ROOT, 'tests/fixtures/experiments/scr-tiny.yaml');

function opts(runsDir: string, over: Partial<RunnerOptions> = {}): RunnerOptions & { err: () => string } {
  const registry = fullRegistry();
  const { stdout, stderr, err } = capturedStreams();
  return { registry, cwd: ROOT, env: {}, stdout, stderr, trackerFactories: [], configFile: CONFIG, sets: [`runs_dir=${runsDir}`], err, ...over };
}

/** A tracker that calls `f` on every new journal event (deterministic hooks into a running experiment). */
function onAppend(f: (e: { type: string; step?: number; values?: Record<string, number> }) => void): TrackerFactory {
  return async (run) => {
    let seen = 0;
    return {
      name: 'hook',
      onAppend: () => {
        const events = readJournal(join(run.dir, 'journal.jsonl')).events;
        for (const e of events.slice(seen)) f(e as never);
        seen = events.length;
      },
      flush: async () => {},
      close: async () => {},
    };
  };
}

const metricEvents = (dir: string) => readJournal(join(dir, 'journal.jsonl')).events.flatMap((e) => (e.type === 'metrics' ? [e] : []));

describe('experiment/scr (tiny, third-party loss, attention loss and tagger)', () => {
  const runs = mkdtempSync(join(tmpdir(), 'rass-scr-'));
  let full: Awaited<ReturnType<typeof runExperiment>>;
  const counts: number[] = [];

  before(async () => {
    full = await runExperiment(opts(runs, { trackerFactories: [onAppend((e) => e.type === 'metrics' && e.values?.loss !== undefined && counts.push(tf.memory().numTensors))] }));
  });

  it('finishes with restoration, LQ, zero-LoRA and attention metrics; the LoRA trained', () => {
    assert.equal(full.status, 'FINISHED', full.status);
    const m = full.metrics;
    for (const k of ['val/psnr', 'val/ssim', 'val/lq_psnr', 'val/lq_ssim', 'val/attn_agreement', 'zero_lora/psnr', 'zero_lora/attn_agreement']) assert.ok(Number.isFinite(m[k]), `${k} = ${m[k]}`);
    assert.ok(m['val/attn_agreement'] > 0 && m['val/attn_agreement'] < 1);
    const events = metricEvents(full.dir);
    const step0 = events.find((e) => e.step === 0 && e.values['val/psnr'] !== undefined);
    assert.ok(step0, 'validation at step 0 (the zero-LoRA restorer)');
    assert.equal(step0.values['val/psnr'], m['zero_lora/psnr'], 'the zero-LoRA baseline is the step-0 validation');
    assert.notEqual(m['val/psnr'], m['zero_lora/psnr'], 'training changed the restorer');
    const trainSteps = events.filter((e) => e.values.loss !== undefined);
    assert.deepEqual(trainSteps.map((e) => e.step), [1, 2, 3, 4, 5, 6]);
    for (const e of trainSteps) {
      assert.ok(e.values['loss/charbonnier'] > 0 && e.values['loss/scl'] > 0, 'both losses are logged');
      assert.ok(Math.abs(e.values.loss - (e.values['loss/charbonnier'] + e.values['loss/scl'])) < 1e-5, 'total = restoration + 1 x SCL');
      assert.ok(e.values['scl/matched'] > 0);
    }
    assert.ok(events.some((e) => e.step === 4 && e.values['val/psnr'] !== undefined), 'validation every eval_every steps');
    // the third-party attention loss has no prepare/computePrepared: the steps ran eagerly, and the run says why
    const tags = Object.assign({}, ...readJournal(join(full.dir, 'journal.jsonl')).events.flatMap((e) => (e.type === 'tags' ? [e.tags] : [])));
    assert.equal(tags['rass.compile.scr'], 'eager');
    assert.match(tags['rass.compile.scr.reason'] ?? '', /"attention-mass" has no prepare\/computePrepared/);
  });

  it('writes the adapter in PEFT format, the image grids and the per-image CSV', () => {
    const art = join(full.dir, 'artifacts');
    const cfg = JSON.parse(readFileSync(join(art, 'adapters/scr/adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.r, 4);
    assert.ok(cfg.target_modules.includes('to_k') && cfg.target_modules.includes('conv_shortcut'));
    const st = readSafetensors(join(art, 'adapters/scr/adapter_model.safetensors'));
    const keys = [...st.tensors.keys()];
    assert.ok(keys.length > 20 && keys.every((k) => /^base_model\.model\..*\.lora_[AB]\.weight$/.test(k)), keys.slice(0, 3).join(', '));
    assert.ok(keys.includes('base_model.model.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight'));
    const b = st.tensors.get('base_model.model.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight');
    assert.ok(b && toFloat32(b).some((v) => v !== 0), 'B moved away from its zero init');
    for (const png of ['images/val_grid.png', 'images/attention.png']) {
      assert.deepEqual([...readFileSync(join(art, png)).subarray(0, 4)], [137, 80, 78, 71], `${png} is a PNG`);
    }
    const csv = readFileSync(join(art, 'val_per_image.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'id,lq_psnr,lq_ssim,psnr,ssim');
    assert.equal(csv.length, 1 + 4);
  });

  it('keeps the tensor count flat from step to step', () => {
    // steps 1..6 journal their loss; step 4 also validates (its count is the same: evaluation disposes everything)
    assert.ok(counts.length >= 5, `${counts.length} samples`);
    assert.deepEqual(new Set(counts.slice(1)).size, 1, `tensor counts per step: ${counts.join(', ')}`);
  });

  it('a stopped run resumes from its checkpoint to the same final metrics', async () => {
    const controller = new AbortController();
    const stopped = await runExperiment(opts(runs, { signal: controller.signal, trackerFactories: [onAppend((e) => e.type === 'metrics' && e.step === 3 && controller.abort())] }));
    assert.equal(stopped.status, 'KILLED');
    const resumed = await runExperiment(opts(runs, { configFile: undefined, sets: [], resume: stopped.runId, runsDir: runs }));
    assert.equal(resumed.status, 'FINISHED');
    assert.equal(resumed.dir, stopped.dir);
    for (const k of ['val/psnr', 'val/ssim', 'val/attn_agreement', 'zero_lora/psnr']) {
      assert.ok(Math.abs(resumed.metrics[k] - full.metrics[k]) <= 1e-6 * Math.max(1, Math.abs(full.metrics[k])), `${k}: resumed ${resumed.metrics[k]} vs uninterrupted ${full.metrics[k]}`);
    }
  });

  it('bad input fails before a run directory exists, naming the key', async () => {
    const fresh = mkdtempSync(join(tmpdir(), 'rass-scr-bad-'));
    // a tagging model's output that misses one training image
    const tags = join(fresh, 'tags.json');
    writeFileSync(tags, JSON.stringify(Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`shapes-${i}`, { checker: 0.9 }]))));
    const cases: [string[], RegExp][] = [
      [[`experiment.tagger={type: tagger/tags-file, file: ${tags}}`], /experiment\.tagger \(train\.dataset\): .*tags\.json: no tags for 1 of 16 images \("shapes-15"\)/],
      [['experiment.lora={type: adapter/lora, target_modules: [to_nothing]}'], /experiment\.lora\.target_modules.*to_nothing/],
      [['experiment.attention_layers=[nowhere\\..*]'], /experiment\.attention_layers: attention layer pattern "nowhere.*" matches no attention layer of the UNet \(layers: .*attn2/],
      [['experiment.train.crop=[64, 64]'], /experiment\.train\.crop: shapes-\d+ is 32x32, smaller than the 64x64 crop/],
    ];
    for (const [sets, re] of cases) {
      const o = opts(fresh, { sets: [`runs_dir=${fresh}`, ...sets] });
      let message: string;
      try {
        const r = await runExperiment(o);
        message = `${r.status} ${o.err()}`;
      } catch (e) {
        message = (e as Error).message;
      }
      assert.match(message, re);
    }
    // the crop error comes from the data, after the run started: that run is recorded FAILED, nothing else
    const made = existsSync(join(fresh, 'scr')) ? readdirSync(join(fresh, 'scr')) : [];
    assert.ok(made.length <= 1, `run dirs: ${made.join(', ')}`);
    const missing = join(fresh, 'missing-degradation.yaml');
    writeFileSync(missing, `extends: ${CONFIG}\nexperiment:\n  train:\n    degradation: !include nowhere/mild.yaml\n`);
    await assert.rejects(runExperiment(opts(fresh, { configFile: missing })), /missing-degradation\.yaml:4:27 experiment\.train\.degradation \(!include\): cannot read config file .*nowhere\/mild\.yaml: no such file/);
  });
});
