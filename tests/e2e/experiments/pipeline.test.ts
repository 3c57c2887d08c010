/**
 * Staged pipelines (SCR -> RASS as one command): a parent run with one child run per stage,
 * `${stage:scr}` resolving to the SCR run's artifacts, a re-run skipping finished stages, and a
 * pipeline killed in either stage finishing, when re-run, with the same final metrics as an
 * uninterrupted one.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPipeline, type PipelineOptions } from '../../../framework/runner/pipeline.js';
import { readJournal } from '../../../framework/tracking/journal.js';
import { findRunDirs } from '../../../framework/tracking/run-store.js';
import { packageRoot } from '../../../framework/paths.js';
import { capturedStreams, fullRegistry } from '../../helpers/experiments.js';
import type { TrackerFactory } from '../../../framework/tracking/tracker.js';

const ROOT = packageRoot();
const PIPELINE = join(ROOT, 'tests/fixtures/experiments/pipeline-tiny.yaml');

function opts(runsDir: string, over: Partial<PipelineOptions> = {}): PipelineOptions & { out: () => string } {
  const registry = fullRegistry();
  const { stdout, stderr, out } = capturedStreams();
  return { registry, cwd: ROOT, env: {}, stdout, stderr, trackerFactories: [], configFile: PIPELINE, sets: [`runs_dir=${runsDir}`], out, ...over };
}

/** Abort once a run of `experiment` has journaled a training step. */
function killDuring(experiment: string, controller: AbortController): TrackerFactory {
  return async (run) => ({
    name: 'kill',
    onAppend: () => {
      if (run.experiment === experiment && readJournal(join(run.dir, 'journal.jsonl')).events.some((e) => e.type === 'metrics' && e.step === 1 && e.values.loss !== undefined)) controller.abort();
    },
    flush: async () => {},
    close: async () => {},
  });
}

const SUMMARY = ['scr/val/psnr', 'scr/zero_lora/psnr', 'rass/val_lq/miou', 'evaluate/miou', 'r2s/miou', 'r2s/restored/psnr'];

describe('pipeline: SCR -> RASS (tiny)', () => {
  const runs = mkdtempSync(join(tmpdir(), 'rass-pipe-'));
  let full: Awaited<ReturnType<typeof runPipeline>>;

  before(async () => {
    full = await runPipeline(opts(runs));
  });

  it('runs each stage as a child run and hands the SCR adapter to RASS', () => {
    assert.equal(full.status, 'FINISHED');
    assert.deepEqual(Object.keys(full.metrics).sort(), [...SUMMARY].sort());
    const parent = readJournal(join(full.dir, 'journal.jsonl')).events;
    const tags = Object.assign({}, ...parent.flatMap((e) => (e.type === 'tags' ? [e.tags] : [])));
    assert.equal(tags['stage.scr.run_id'], `${full.runId}.scr`);
    assert.equal(tags['stage.rass.status'], 'FINISHED');
    const dirs = findRunDirs(runs);
    const scrDir = dirs.find((d) => d.endsWith('.scr')) as string;
    const rassDir = dirs.find((d) => d.endsWith('.rass')) as string;
    for (const d of [scrDir, rassDir]) {
      const runEvent = readJournal(join(d, 'journal.jsonl')).events.find((e) => e.type === 'run');
      assert.equal(runEvent?.type === 'run' && runEvent.parentRunId, full.runId, 'MLflow nests the stage under the pipeline');
    }
    const rassConfig = readFileSync(join(rassDir, 'config.yaml'), 'utf8');
    assert.ok(rassConfig.includes(join(scrDir, 'artifacts', 'adapters', 'scr')), 'the RASS stage loads the SCR stage\'s adapter');
    // the evaluate stage rebuilds the segmenter from the RASS run and scores the same validation
    // images (same dataset, degradation seed and tags): it must reproduce the run's own evaluation
    assert.equal(full.metrics['evaluate/miou'], full.metrics['rass/val_lq/miou']);
    assert.ok((full.metrics['r2s/restored/psnr'] as number) > 5, 'R2S restores with the SCR run\'s restorer');
  });

  it('a re-run skips finished stages and reports the same metrics', async () => {
    const before = findRunDirs(runs).length;
    const o = opts(runs);
    const again = await runPipeline(o);
    assert.equal(again.status, 'FINISHED');
    assert.equal(findRunDirs(runs).length, before, 'no new run');
    assert.match(o.out(), /stage scr: finished earlier.*skipped[\s\S]*stage rass: finished earlier/);
    assert.deepEqual(again.metrics, full.metrics);
  });

  for (const stage of ['scr', 'rass']) {
    it(`killed during the ${stage} stage, a re-run finishes with the same final metrics`, async () => {
      const dir = mkdtempSync(join(tmpdir(), `rass-pipe-kill-${stage}-`));
      const controller = new AbortController();
      const killed = await runPipeline(opts(dir, { signal: controller.signal, trackerFactories: [killDuring(stage, controller)] }));
      assert.equal(killed.status, 'KILLED');
      const parentStatus = readJournal(join(killed.dir, 'journal.jsonl')).events.filter((e) => e.type === 'status').map((e) => (e.type === 'status' ? e.status : ''));
      assert.deepEqual(parentStatus, ['RUNNING', 'KILLED']);
      const o = opts(dir);
      const resumed = await runPipeline(o);
      assert.equal(resumed.status, 'FINISHED');
      assert.match(o.out(), new RegExp(`stage ${stage}: resuming run`));
      assert.equal(findRunDirs(dir).length, 5, 'the parent and one run per stage, no extra runs');
      for (const k of SUMMARY) assert.ok(Math.abs((resumed.metrics[k] as number) - (full.metrics[k] as number)) < 1e-6, `${k}: ${resumed.metrics[k]} vs uninterrupted ${full.metrics[k]}`);
    });
  }
});
