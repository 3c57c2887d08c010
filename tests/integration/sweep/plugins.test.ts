/**
 * Trackers and executors are plugins: the examples' third-party `tracker/csv` and
 * `executor/serial` run a sweep through `plugins:`, the built-in ones are listed by
 * `rass plugins`, and the CLI that trials run is the one that started the sweep.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJournal } from '../../../framework/tracking/journal.js';
import { runCliCaptured } from '../../helpers/cli.js';
import { experimentsPackage } from '../../../experiments/index.js';

const bin = join(process.cwd(), 'dist', 'bin', 'rass.js');

function rass(entry: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [entry, ...args], { cwd: process.cwd(), env: { ...process.env, CI: 'true', ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => done({ code, out, err }));
  });
}

/** The journal's metric points as CSV rows, computed here independently of the tracker. */
function journalRows(dir: string): string[] {
  return readJournal(join(dir, 'journal.jsonl')).events.flatMap((e) => (e.type === 'metrics' ? Object.entries(e.values).map(([k, v]) => `${e.step},${k},${v === null || Number.isNaN(v) ? 'NaN' : String(v)}`) : []));
}

describe('tracker and executor plugins', () => {
  it('`rass plugins tracker` and `rass plugins executor` list the built-in ones', async () => {
    const t = await runCliCaptured(['plugins', 'tracker', '--json'], []);
    assert.equal(t.code, 0, t.err);
    assert.deepEqual((JSON.parse(t.out) as { type: string }[]).map((p) => p.type), ['tracker/mlflow']);
    const e = await runCliCaptured(['plugins', 'executor', '--json'], []);
    assert.equal(e.code, 0, e.err);
    assert.deepEqual((JSON.parse(e.out) as { type: string }[]).map((p) => p.type), ['executor/local', 'executor/slurm']);
  });

  it('sweep.executor is checked by its plugin\'s schema; the old `type: local` form still means executor/local', async () => {
    const dry = (executor: string) => runCliCaptured(['sweep', 'tests/fixtures/sweep/mixed.yaml', '--dry-run', '--set', 'runs_dir=/nonexistent-dry-run', '--set', `sweep.executor=${executor}`], [experimentsPackage]);
    const ok = await dry('{type: local, max_trials_per_worker: 1}');
    assert.equal(ok.code, 0, ok.err);
    const foreign = await dry('{type: local, partition: gpu}');
    assert.equal(foreign.code, 2);
    assert.match(foreign.err, /sweep\.executor: .*partition: unknown key "partition"; allowed keys: max_trials_per_worker, memory_mb, node_args, trial_timeout_s/);
    const bad = await dry('{type: executor/slurm, gpus: -1}');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /sweep\.executor: .*gpus: must be >= 0/);
    const unknown = await dry('{type: executor/nope}');
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /sweep\.executor: .*unknown plugin executor\/nope; known executor plugins: local, slurm/);
  });

  it('the examples\' CSV tracker and serial executor, loaded through `plugins:`, run a sweep', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'sweep-example-plugins-'));
    const r = await rass(bin, ['sweep', 'tests/fixtures/sweep/example-plugins.yaml', '--set', `runs_dir=${runs}`]);
    assert.equal(r.code, 0, r.err + r.out);
    const parentDir = join(runs, 'example-plugins', readdirSync(join(runs, 'example-plugins'))[0]);
    const trials = JSON.parse(readFileSync(join(parentDir, 'artifacts', 'trials.json'), 'utf8')) as { id: string; runId: string; state: string }[];
    assert.equal(trials.length, 2);
    for (const t of trials) {
      assert.equal(t.state, 'FINISHED');
      // the serial executor ran it (its line in the trial log), as a fresh `rass run` of the sweep's CLI
      assert.match(readFileSync(join(parentDir, 'artifacts', 'logs', `${t.id}.log`), 'utf8'), new RegExp(`=== executor/serial: trial ${t.id} runs ${process.execPath.replace(/[/\\.]/g, '\\$&')} ${bin.replace(/[/\\.]/g, '\\$&')} run `));
      // the CSV tracker mirrored every metric point of the trial's journal
      const dir = join(runs, 'toy-classifier', t.runId);
      const rows = readFileSync(join(dir, 'metrics.csv'), 'utf8').trim().split('\n');
      assert.equal(rows[0], 'step,key,value');
      const expected = journalRows(dir);
      assert.ok(expected.length > 12, `the trial logged metrics (${expected.length})`);
      assert.deepEqual(rows.slice(1), expected);
    }
    // the sweep's parent run gets the sweep config's trackers too
    assert.deepEqual(readFileSync(join(parentDir, 'metrics.csv'), 'utf8').trim().split('\n').slice(1), journalRows(parentDir));
    assert.match(readFileSync(join(parentDir, 'metrics.csv'), 'utf8'), /^0,trials_finished,2$/m);
  });

  it('sweep workers run the CLI that started the sweep, not a fixed dist/bin/rass.js', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sweep-cli-entry-'));
    // another entry script (as a global install or a bundle would have): it records each start
    const entry = join(dir, 'my-rass.mjs');
    const starts = join(dir, 'starts.txt');
    writeFileSync(entry, `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(starts)}, process.argv.slice(2).join(' ') + '\\n');\nawait import(${JSON.stringify(new URL(`file://${bin}`).href)});\n`);
    const r = await rass(entry, ['sweep', 'tests/fixtures/sweep/mixed.yaml', '--set', `runs_dir=${join(dir, 'runs')}`, '--set', 'experiment.steps=10', '--set', 'sweep.variants.loss={ce: {experiment.loss: {type: loss/toy-cross-entropy}}}', '--max-parallel', '1']);
    assert.equal(r.code, 0, r.err + r.out);
    const lines = readFileSync(starts, 'utf8').trim().split('\n');
    assert.match(lines[0], /^sweep /);
    assert.deepEqual(lines.slice(1), ['_trial-worker'], 'the one worker was started through the same entry script');
  });
});
