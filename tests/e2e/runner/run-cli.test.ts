/**
 * `rass run` as a user runs it (a child process of the compiled CLI): the quickstart config
 * through the whole lifecycle; SIGTERM -> KILLED with a checkpoint; SIGKILL in the middle of
 * a journal write -> a torn last line the reader reports, `rass runs list` shows the run as
 * not finished, and `rass run --resume` repairs the tail and finishes the same run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJournal } from '../../../framework/tracking/journal.js';
import type { JournalEvent } from '../../../framework/tracking/events.js';
import { ROOT, cli, tempDir } from '../../integration/runner/helpers.js';

// From dist/tests/e2e/runner/ the compiled CLI is dist/bin/rass.js; from the TypeScript
// sources (tsx) it is bin/rass.ts run through tsx.
const here = dirname(fileURLToPath(import.meta.url));
const compiled = join(here, '..', '..', '..', 'bin', 'rass.js');
const cliArgs = existsSync(compiled) ? [compiled] : ['--import', 'tsx', join(ROOT, 'bin', 'rass.ts')];

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function rass(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [...cliArgs, ...args], { cwd: ROOT, env: { ...process.env, CI: 'true', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (err += b));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
  return { child, out: () => out, err: () => err, exit };
}

async function until(cond: () => boolean, what: string, p: Proc, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) {
      p.child.kill('SIGKILL');
      throw new Error(`timed out waiting for ${what}; stderr:\n${p.err()}`);
    }
    if (p.child.exitCode !== null) throw new Error(`rass exited (${p.child.exitCode}) before ${what}; stderr:\n${p.err()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function onlyRun(runs: string): string {
  const exp = join(runs, 'toy-classifier');
  const dirs = readdirSync(exp);
  assert.equal(dirs.length, 1);
  return join(exp, dirs[0]);
}

const statuses = (ev: JournalEvent[]) => ev.filter((e) => e.type === 'status').map((e) => (e.type === 'status' ? e.status : ''));

describe('rass run (child process)', { timeout: 120_000 }, () => {
  it('configs/toy/classifier.yaml: params, metrics, artifact, checkpoint, progress and summary', async () => {
    const runs = tempDir('quickstart');
    const p = rass(['run', 'configs/toy/classifier.yaml', '--set', `runs_dir=${runs}`]);
    const { code } = await p.exit;
    assert.equal(code, 0, p.err());
    const dir = onlyRun(runs);
    for (const f of ['config.yaml', 'overrides.json', 'journal.jsonl', 'artifacts/config.yaml', 'artifacts/confusion_matrix.csv', 'checkpoints/step-000300/model.safetensors']) {
      assert.ok(existsSync(join(dir, f)), `${f} missing`);
    }
    assert.equal(existsSync(join(dir, 'lock')), false);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'overrides.json'), 'utf8')), [`runs_dir=${runs}`]);
    const { events, torn, errors } = readJournal(join(dir, 'journal.jsonl'));
    assert.equal(torn, undefined);
    assert.deepEqual(errors, []);
    assert.deepEqual(statuses(events), ['RUNNING', 'FINISHED']);
    const params = Object.assign({}, ...events.flatMap((e) => (e.type === 'params' ? [e.params] : [])));
    assert.equal(params['experiment.steps'], '300');
    assert.equal(params['experiment.loss.type'], 'loss/toy-cross-entropy');
    const steps = events.flatMap((e) => (e.type === 'metrics' && e.values.loss !== undefined ? [e.step] : []));
    assert.equal(steps.length, 300);
    // the artifact record matches the file's bytes
    const art = events.find((e) => e.type === 'artifact' && e.path === 'confusion_matrix.csv');
    assert.ok(art && art.type === 'artifact');
    const bytes = readFileSync(join(dir, 'artifacts', 'confusion_matrix.csv'));
    assert.equal(art.size, bytes.length);
    assert.equal(art.sha256, createHash('sha256').update(bytes).digest('hex'));
    // the confusion matrix counts every test sample once
    const cells = bytes.toString().trim().split('\n').slice(1).flatMap((l) => l.split(',').slice(1).map(Number));
    assert.equal(cells.reduce((a, b) => a + b, 0), 256);
    const tags = Object.assign({}, ...events.flatMap((e) => (e.type === 'tags' ? [e.tags] : [])));
    assert.match(tags['rass.backend'], /^(tensorflow|wasm|cpu)$/); // quickstart uses backend: auto
    assert.match(tags['rass.config_hash'], /^[0-9a-f]{16}$/);
    // the final metrics: a real (if small) model learns the blobs well above chance (1/3)
    const finalAcc = [...events].reverse().find((e) => e.type === 'metrics' && e.values.test_accuracy !== undefined);
    assert.ok(finalAcc && finalAcc.type === 'metrics' && finalAcc.values.test_accuracy > 0.8, JSON.stringify(finalAcc));
    // plain progress lines (CI) and the summary table
    assert.match(p.err(), /train: 300\/300 100%/);
    assert.match(p.out(), /status\s+FINISHED/);
    assert.match(p.out(), /test_accuracy\s+0\.\d{4}/);
  });

  it('SIGTERM: status KILLED, exit 143, a checkpoint to resume from', async () => {
    const runs = tempDir('sigterm');
    const p = rass(['run', 'configs/toy/classifier.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=1000000']);
    await until(() => existsSync(join(runs, 'toy-classifier')) && readdirSync(join(runs, 'toy-classifier')).length === 1
      && existsSync(join(onlyRun(runs), 'journal.jsonl')) && readJournal(join(onlyRun(runs), 'journal.jsonl')).events.filter((e) => e.type === 'metrics').length >= 20, 'twenty metric events', p);
    p.child.kill('SIGTERM');
    const { code } = await p.exit;
    assert.equal(code, 143, p.err());
    const dir = onlyRun(runs);
    const { events, torn } = readJournal(join(dir, 'journal.jsonl'));
    assert.equal(torn, undefined);
    assert.deepEqual(statuses(events), ['RUNNING', 'KILLED']);
    const last = events[events.length - 1];
    assert.match(last.type === 'status' ? (last.message ?? '') : '', /SIGTERM/);
    assert.ok(existsSync(join(dir, 'checkpoints', 'LATEST')));
    assert.equal(existsSync(join(dir, 'lock')), false);
  });

  it('SIGKILL mid-write: torn last line reported, run shown as not finished, --resume repairs and finishes it', async () => {
    const runs = tempDir('sigkill');
    const p = rass(['run', 'configs/toy/classifier.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=120', '--set', 'experiment.checkpoint_every=10'], { RASS_JOURNAL_FAULT: 'torn-at-seq:50' });
    await until(() => p.err().includes('journal fault: torn write at seq 50'), 'the torn write', p);
    p.child.kill('SIGKILL');
    const { signal } = await p.exit;
    assert.equal(signal, 'SIGKILL');
    const dir = onlyRun(runs);
    const read = readJournal(join(dir, 'journal.jsonl'));
    assert.equal(read.events.length, 50, 'every complete event is kept');
    assert.ok(read.torn, 'the torn line is reported');
    assert.equal(read.torn.line, 51);
    assert.ok(read.torn.bytes > 0);
    assert.deepEqual(read.errors, []);
    assert.deepEqual(statuses(read.events), ['RUNNING']);

    const list = await cli(['runs', 'list', '--runs-dir', runs]);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /RUNNING\? \(stale: process gone\) \(torn journal\)/);
    const show = await cli(['runs', 'show', dir]);
    assert.match(show.err, /journal\.jsonl:51: torn last line/);

    const runId = dir.split(/[/\\]/).pop()!;
    const r = rass(['run', '--resume', runId, '--runs-dir', runs]);
    const { code } = await r.exit;
    assert.equal(code, 0, r.err());
    assert.match(r.err(), /taking over a stale lock/);
    assert.match(r.err(), /journal\.jsonl:51: torn last line .* removed before resuming/);
    assert.match(r.err(), /resuming from .*checkpoints[/\\]step-0000\d0 at step \d+/);
    const after = readJournal(join(dir, 'journal.jsonl'));
    assert.equal(after.torn, undefined);
    assert.deepEqual(after.errors, []);
    assert.deepEqual(after.events.map((e) => e.seq), after.events.map((_, i) => i), 'seq contiguous: the resumed events follow the 50 kept ones');
    assert.deepEqual(statuses(after.events), ['RUNNING', 'RUNNING', 'FINISHED']);
    const lastStep = Math.max(...after.events.flatMap((e) => (e.type === 'metrics' ? [e.step] : [])));
    assert.equal(lastStep, 120);
    const list2 = await cli(['runs', 'list', '--runs-dir', runs]);
    assert.match(list2.out, new RegExp(`${runId}\\s+toy-classifier\\s+toy-classifier\\s+FINISHED`));
  });
});
