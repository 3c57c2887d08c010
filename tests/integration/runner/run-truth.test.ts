/**
 * Runs tell the truth about themselves: a FINISHED run is not reopened by --resume (unless
 * --force); the duration is the running time summed over attempts, the same number in the
 * run's summary, `runs list` and `runs show`; the final evaluation is journaled once; each
 * attempt records its backend and host; `runs compare` shows tags that differ.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runExperiment, type RunnerOptions } from '../../../framework/runner/runner.js';
import { readJournal } from '../../../framework/tracking/journal.js';
import { formatDuration, summarizeRun } from '../../../framework/tracking/run-store.js';
import type { TrackerFactory } from '../../../framework/tracking/tracker.js';
import { FIXTURES, ROOT, cli, registry, streams, tempDir } from './helpers.js';

function opts(runsDir: string, over: Partial<RunnerOptions>): RunnerOptions & { out: () => string } {
  const s = streams();
  return { registry: registry(), cwd: ROOT, env: {}, stdout: s.stdout, stderr: s.stderr, trackerFactories: [], sets: [`runs_dir=${runsDir}`], out: s.out, ...over };
}

function abortAfter(n: number, controller: AbortController): TrackerFactory {
  return async () => {
    let seen = 0;
    return { name: 'abort-after', onAppend: () => void (++seen === n && controller.abort()), flush: async () => {}, close: async () => {} };
  };
}

const summaryDuration = (out: string) => /^duration\s+(\S+)/m.exec(out)?.[1];

describe('runs tell the truth', () => {
  const runs = tempDir('truth');
  let finished: { runId: string; dir: string };

  before(async () => {
    finished = await runExperiment(opts(runs, { configFile: join(FIXTURES, 'small.yaml') }));
  });

  it('the final evaluation is journaled once at the last step', () => {
    const { events } = readJournal(join(finished.dir, 'journal.jsonl'));
    const atLast = events.filter((e) => e.type === 'metrics' && e.step === 80 && 'test_accuracy' in e.values);
    assert.equal(atLast.length, 1, `test_accuracy journaled ${atLast.length} times at step 80`);
  });

  it('--resume of a FINISHED run refuses and leaves it untouched; --force reopens it as a new attempt', async () => {
    const before = readFileSync(join(finished.dir, 'journal.jsonl'), 'utf8');
    await assert.rejects(runExperiment(opts(runs, { resume: finished.runId, sets: [], runsDir: runs })), { name: 'UserError', message: /is FINISHED .*--force/ });
    assert.equal(readFileSync(join(finished.dir, 'journal.jsonl'), 'utf8'), before, 'the journal is unchanged');
    const cliRefusal = await cli(['run', '--resume', finished.runId, '--runs-dir', runs]);
    assert.equal(cliRefusal.code, 2);
    assert.match(cliRefusal.err, /^error: run \S+ is FINISHED/m);

    const forced = await runExperiment(opts(runs, { resume: finished.runId, sets: [], runsDir: runs, force: true }));
    assert.equal(forced.status, 'FINISHED');
    const s = summarizeRun(finished.dir);
    assert.equal(s.attempts.length, 2);
    assert.equal(s.tags['rass.attempts'], '2');
    for (const n of [1, 2]) {
      assert.equal(s.tags[`rass.attempt.${n}.backend`], 'cpu');
      assert.equal(s.tags[`rass.attempt.${n}.host`], hostname());
    }
  });

  it('a resumed run: duration = running time of both attempts, the same in the summary, runs list and runs show', async () => {
    const controller = new AbortController();
    const killed = await runExperiment(opts(runs, { configFile: join(FIXTURES, 'small.yaml'), signal: controller.signal, trackerFactories: [abortAfter(40, controller)] }));
    assert.equal(killed.status, 'KILLED');
    await sleep(1500); // time between the kill and the resume is not running time
    const o = opts(runs, { resume: killed.runId, sets: [], runsDir: runs });
    const resumed = await runExperiment(o);
    assert.equal(resumed.status, 'FINISHED');
    const s = summarizeRun(killed.dir);
    assert.equal(s.attempts.length, 2);
    const running = s.attempts.reduce((a, t) => a + (t.end - t.start), 0);
    assert.equal(s.durationMs, running);
    assert.ok(s.last! - s.start! - running >= 1400, `the 1.5 s gap is left out (wall ${s.last! - s.start!} ms, running ${running} ms)`);
    const d = formatDuration(s.durationMs);
    assert.equal(summaryDuration(o.out()), d, o.out());
    const list = await cli(['runs', 'list', '--runs-dir', runs]);
    const row = list.out.split('\n').find((l) => l.startsWith(killed.runId));
    assert.ok(row?.includes(` ${d} `), `runs list row shows ${d}: ${row}`);
    const show = await cli(['runs', 'show', killed.runId, '--runs-dir', runs]);
    assert.match(show.out, new RegExp(`^duration\\s+${d.replace('.', '\\.')} \\(running time of 2 attempts: `, 'm'));
  });

  it('runs compare shows the tags that differ', async () => {
    const a = await runExperiment(opts(runs, { configFile: join(FIXTURES, 'small.yaml'), sets: [`runs_dir=${runs}`, 'experiment.steps=2'], tags: { purpose: 'baseline' } }));
    const b = await runExperiment(opts(runs, { configFile: join(FIXTURES, 'small.yaml'), sets: [`runs_dir=${runs}`, 'experiment.steps=2'], tags: { purpose: 'retry' } }));
    const cmp = await cli(['runs', 'compare', a.runId, b.runId, '--runs-dir', runs]);
    assert.equal(cmp.code, 0, cmp.err);
    assert.match(cmp.out, /params: identical/);
    assert.match(cmp.out, /tags that differ:\n.*\n.*\n\s*purpose\s+baseline\s+retry\s*$/m);
    assert.doesNotMatch(cmp.out, /rass\.config_hash/, 'identical tags are not listed');
    const withResumed = await cli(['runs', 'compare', a.runId, finished.runId, '--runs-dir', runs]);
    assert.match(withResumed.out, /^attempts\s+1\s+2\s*$/m);
  });
});
