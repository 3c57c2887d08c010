/**
 * A sweep over a staged config: each trial runs the whole pipeline (a parent run per trial, a
 * child run per stage) with its overrides, a `stages.<id>.<key>` axis reaching only that stage;
 * the sweep's metric and report use the pipeline summary's stage-prefixed names; a re-run skips
 * finished trials and resumes a trial whose pipeline was interrupted at its unfinished stage.
 * Stages are the toy classifier (about a second each).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { readJournal } from '../../../framework/tracking/journal.js';
import { LocalRun } from '../../../framework/tracking/local-run.js';

const bin = join(process.cwd(), 'dist', 'bin', 'rass.js');

function rass(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: process.cwd(), env: { ...process.env, CI: 'true' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => done({ code, out, err }));
  });
}

const events = (dir: string) => readJournal(join(dir, 'journal.jsonl')).events;
const statuses = (dir: string) => events(dir).flatMap((e) => (e.type === 'status' ? [e.status] : []));
const runEvent = (dir: string) => {
  const ev = events(dir).find((e) => e.type === 'run');
  assert.ok(ev && ev.type === 'run', `${dir}: no run event`);
  return ev;
};
/** the last value of a metric the run journaled (read from the journal, not the sweep's records) */
const lastMetric = (dir: string, name: string) => events(dir).flatMap((e) => (e.type === 'metrics' && typeof e.values[name] === 'number' ? [e.values[name]] : [])).at(-1);
const hiddenOf = (dir: string) => (parse(readFileSync(join(dir, 'config.yaml'), 'utf8')) as { experiment: { hidden: number } }).experiment.hidden;

const toyStage = (hidden: number) => ['name: toy', 'seed: 7', 'backend: cpu', 'experiment:', '  type: experiment/toy-classifier', '  steps: 8', '  batch_size: 32', `  hidden: ${hidden}`, '  train_size: 128', '  test_size: 64', '  eval_every: 8', '  checkpoint_every: 4', ''].join('\n');

function staged(dir: string, sweep: string[]): string {
  writeFileSync(join(dir, 'stage.yaml'), toyStage(16));
  const file = join(dir, 'pipe.yaml');
  writeFileSync(
    file,
    [
      'name: pipe',
      'stages:',
      '  - { id: a, config: stage.yaml }',
      '  - id: b',
      '    experiment: { type: experiment/toy-classifier, steps: 8, batch_size: 32, hidden: 6, train_size: 128, test_size: 64, eval_every: 8, checkpoint_every: 4 }',
      'summary: [a/test_accuracy, b/test_accuracy]',
      'sweep:',
      ...sweep,
      '',
    ].join('\n'),
  );
  return file;
}

interface TrialJson {
  id: string;
  runId: string;
  experiment: string;
  state: string;
  labels: Record<string, string>;
  metrics: Record<string, number>;
}

describe('rass sweep over a staged config', () => {
  it('each trial runs the pipeline with its stage-level value; the table and report carry stage metrics; re-runs skip finished trials and resume an interrupted stage', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rass-pipe-sweep-'));
    const runs = join(dir, 'runs');
    const file = staged(dir, ['  name: pipe-sweep', '  grid: { stages.a.experiment.hidden: [3, 5] }', '  metric: { name: a/test_accuracy, goal: max }']);
    const first = await rass(['sweep', file, '--set', `runs_dir=${runs}`, '--max-parallel', '2']);
    assert.equal(first.code, 0, first.err + first.out);
    // the final table names the stage-prefixed summary metrics
    assert.match(first.out, /FINISHED\s+stages\.a\.experiment\.hidden=3\s+a\/test_accuracy=\d/);

    const sweepId = readdirSync(join(runs, 'pipe-sweep'))[0];
    const sweepDir = join(runs, 'pipe-sweep', sweepId);
    const trials = JSON.parse(readFileSync(join(sweepDir, 'artifacts', 'trials.json'), 'utf8')) as TrialJson[];
    assert.equal(trials.length, 2);
    for (const t of trials) {
      assert.equal(t.state, 'FINISHED');
      assert.equal(t.experiment, 'pipe', 'a trial run is the pipeline\'s parent run, in the pipeline\'s folder');
      const trialDir = join(runs, 'pipe', t.runId);
      // nesting: sweep parent -> trial pipeline parent -> stage children
      assert.equal(runEvent(trialDir).parentRunId, sweepId);
      const stageA = join(runs, 'toy-classifier', `${t.runId}.a`);
      const stageB = join(runs, 'toy-classifier', `${t.runId}.b`);
      assert.equal(runEvent(stageA).parentRunId, t.runId);
      assert.equal(runEvent(stageB).parentRunId, t.runId);
      // the axis reached stage a's resolved config, and only stage a
      assert.equal(hiddenOf(stageA), Number(t.labels['stages.a.experiment.hidden']));
      assert.equal(hiddenOf(stageB), 6);
      // the trial's metrics are the stages' own final values under the pipeline's names
      assert.equal(t.metrics['a/test_accuracy'], lastMetric(stageA, 'test_accuracy'));
      assert.equal(t.metrics['b/test_accuracy'], lastMetric(stageB, 'test_accuracy'));
    }
    const report = readFileSync(join(sweepDir, 'artifacts', 'report.md'), 'utf8');
    assert.match(report, /\| trial \| state \| stages\.a\.experiment\.hidden \| a\/test_accuracy \| b\/test_accuracy \|/);
    assert.match(report, /## a\/test_accuracy by ablation axis/, 'the sweep metric (a stage metric) drives the charts');

    const again = await rass(['sweep', file, '--set', `runs_dir=${runs}`]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /2 trials \(2 finished earlier, 0 to run/);

    // interrupt trial 0 in stage b (as a kill leaves it: stage b and the trial's pipeline KILLED)
    const t0 = trials[0];
    const t0Dir = join(runs, 'pipe', t0.runId);
    const t0b = join(runs, 'toy-classifier', `${t0.runId}.b`);
    const t0a = join(runs, 'toy-classifier', `${t0.runId}.a`);
    const aEvents = events(t0a).length;
    for (const d of [t0b, t0Dir]) {
      const r = LocalRun.reopen(d);
      r.setStatus('RUNNING', 'test');
      await r.finalize('KILLED', 'stopped by SIGINT');
    }
    const resumed = await rass(['sweep', file, '--set', `runs_dir=${runs}`]);
    assert.equal(resumed.code, 0, resumed.err + resumed.out);
    assert.match(resumed.out, /2 trials \(1 finished earlier, 1 to run/);
    const log = readFileSync(join(sweepDir, 'artifacts', 'logs', `${t0.id}.log`), 'utf8');
    assert.match(log, /stage a: finished earlier .* skipped/);
    assert.match(log, new RegExp(`stage b: resuming run ${t0.runId.replace(/\./g, '\\.')}\\.b`));
    assert.equal(events(t0a).length, aEvents, 'the finished stage was not touched');
    assert.deepEqual(statuses(t0b).slice(-3), ['KILLED', 'RUNNING', 'FINISHED'], 'the interrupted stage was resumed in its own run');
    assert.equal(statuses(t0Dir).at(-1), 'FINISHED');
    assert.deepEqual(readdirSync(join(runs, 'pipe')).sort(), [...trials.map((t) => t.runId)].sort(), 'no new trial runs: the same run directories');
  });

  it('an axis naming no stage of the pipeline is a UserError naming the file, line and key, before anything runs (rass sweep and rass validate)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rass-pipe-sweep-bad-'));
    const runs = join(dir, 'runs');
    const file = staged(dir, ['  grid:', '    stages.a.experiment.hidden: [3, 5]', '    stages.nope.experiment.hidden: [4]']);
    const r = await rass(['sweep', file, '--dry-run', '--set', `runs_dir=${runs}`]);
    assert.equal(r.code, 2, r.err);
    const expected = new RegExp(`${file.replace(/[.\\/]/g, '\\$&')}:10:\\d+ sweep axis "stages\\.nope\\.experiment\\.hidden": the pipeline has no stage "nope" \\(its stages: a, b\\)`);
    assert.match(r.err, expected);
    const v = await rass(['validate', file]);
    assert.equal(v.code, 2);
    assert.match(v.err, expected);
    // the metric must be a stage metric the pipeline's summary records
    const file2 = staged(dir, ['  grid: { stages.a.experiment.hidden: [3] }', '  metric: { name: test_accuracy }']);
    const m = await rass(['sweep', file2, '--dry-run', '--set', `runs_dir=${runs}`]);
    assert.equal(m.code, 2);
    assert.match(m.err, /pipe\.yaml:9:\d+ sweep\.metric\.name "test_accuracy": a pipeline trial reports stage metrics as <stage id>\/<metric>/);
  });
});
