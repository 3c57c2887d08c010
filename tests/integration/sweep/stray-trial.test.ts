/**
 * A sweep trial whose experiment throws outside its promise (a stray timer) or leaves an
 * unhandled rejection fails alone with that message in its own run and in the sweep's record,
 * as `rass run` does, rather than killing its worker and being closed as "died without a final
 * status".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarizeRun } from '../../../framework/tracking/run-store.js';

const root = process.cwd();

test('stray errors in sweep trials fail the trial with their message; the sweep goes on', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-stray-'));
  const runs = join(dir, 'runs');
  const cfg = join(dir, 'stray-sweep.yaml');
  writeFileSync(cfg, `extends: ${join(root, 'tests/fixtures/runner/stray-error.yaml')}\nsweep:\n  name: stray\n  grid: { experiment.mode: [throw, reject] }\n`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(root, 'dist/bin/rass.js'), 'sweep', cfg, '--set', `runs_dir=${runs}`, '--max-parallel', '1'], {
    cwd: root, encoding: 'utf8', timeout: 90_000, env: { ...process.env, CI: 'true' },
  });
  assert.notEqual(r.signal, 'SIGTERM', `sweep still running after ${(Date.now() - t0) / 1000} s`);
  assert.equal(r.status, 1, r.stderr);
  const [parent] = readdirSync(join(runs, 'stray'));
  const trials = JSON.parse(readFileSync(join(runs, 'stray', parent, 'artifacts', 'trials.json'), 'utf8')) as { overrides: string[]; state: string; message?: string; runId: string; experiment: string }[];
  assert.equal(trials.length, 2);
  const byMode = Object.fromEntries(trials.map((t) => [t.overrides.find((o) => o.startsWith('experiment.mode='))!, t]));
  const expect = { 'experiment.mode="throw"': /^stray timer exploded/, 'experiment.mode="reject"': /^stray rejection in a handler/ };
  for (const [mode, message] of Object.entries(expect)) {
    const t = byMode[mode];
    assert.ok(t, `trial ${mode} recorded`);
    assert.equal(t.state, 'FAILED');
    assert.match(t.message ?? '', message, `${mode}: the sweep records the stray error, not a dead worker`);
    const s = summarizeRun(join(runs, t.experiment, t.runId));
    assert.equal(s.status, 'FAILED');
    assert.match(s.statusMessage ?? '', message);
    assert.equal(s.metrics.before?.value, 1, 'what the trial logged before the error stays recorded');
  }
});
