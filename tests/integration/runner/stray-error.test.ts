/**
 * An error thrown outside the experiment's promise (a stray timer, an unhandled rejection in an
 * event handler) fails the run like an error from the experiment: status FAILED with the message
 * in the journal and the summary, exit code 1, lock released. Run through the real CLI in a child
 * process, since without the runner's handlers Node itself would kill the process with the run
 * left RUNNING.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readJournal } from '../../../framework/tracking/journal.js';
import { summarizeRun } from '../../../framework/tracking/run-store.js';
import { FIXTURES, ROOT, tempDir } from './helpers.js';

function runStray(mode: 'throw' | 'reject') {
  const runs = tempDir(`stray-${mode}`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/bin/rass.js'), 'run', join(FIXTURES, 'stray-error.yaml'), '--set', `runs_dir=${runs}`, '--set', `experiment.mode=${mode}`], {
    cwd: ROOT, encoding: 'utf8', timeout: 45_000, env: { ...process.env, CI: 'true' },
  });
  const seconds = (Date.now() - t0) / 1000;
  assert.notEqual(r.signal, 'SIGTERM', `still running after ${seconds} s`);
  const [dir] = readdirSync(join(runs, 'stray-error')).map((d) => join(runs, 'stray-error', d));
  return { r, dir, seconds };
}

function assertFailed(dir: string, message: RegExp): void {
  const { events } = readJournal(join(dir, 'journal.jsonl'));
  const last = events[events.length - 1];
  assert.equal(last.type, 'status');
  assert.equal(last.type === 'status' && last.status, 'FAILED');
  assert.match(last.type === 'status' ? (last.message ?? '') : '', message);
  const s = summarizeRun(dir);
  assert.equal(s.status, 'FAILED');
  assert.match(s.statusMessage ?? '', message);
  assert.equal(s.metrics.before?.value, 1, 'what was logged before the error stays recorded');
  assert.equal(existsSync(join(dir, 'lock')), false, 'lock released');
}

describe('errors outside the experiment promise', () => {
  it('an uncaught exception from a stray timer ends the run FAILED with its message', () => {
    const { r, dir } = runStray('throw');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /run failed: Error: stray timer exploded/);
    assertFailed(dir, /^stray timer exploded$/);
  });

  it('an unhandled rejection ends the run FAILED, and the CLI exits although the experiment ignores the abort', () => {
    const { r, dir, seconds } = runStray('reject');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /stray rejection in a handler/);
    assertFailed(dir, /^stray rejection in a handler$/);
    // the experiment keeps a 60 s timer: the CLI leaves 2 s after closing the run instead
    assert.ok(seconds < 30, `exited after ${seconds} s`);
  });
});
