import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readJournal } from '../../../framework/tracking/journal.js';
import { startGroup } from '../../helpers/process-group.js';

// These tests drive the compiled CLI (trials are child processes of `rass sweep`).
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

const statuses = (dir: string) => readJournal(join(dir, 'journal.jsonl')).events.flatMap((e) => (e.type === 'status' ? [e.status] : []));

describe('rass sweep (local executor)', () => {
  it('dry-run prints the trial table with stable ids and validates every trial up front', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'sweep-dry-'));
    const a = await rass(['sweep', 'configs/toy/lr-hidden-sweep.yaml', '--dry-run', '--set', `runs_dir=${runs}`]);
    assert.equal(a.code, 0, a.err);
    const ids = [...a.out.matchAll(/^(t[0-9a-f]{10})\s+PENDING\s+(.*)$/gm)].map((m) => [m[1], m[2]]);
    assert.equal(ids.length, 8);
    assert.deepEqual(ids[0][1].trim(), 'experiment.lr=0.003 experiment.hidden=16 seed=0');
    const b = await rass(['sweep', 'configs/toy/lr-hidden-sweep.yaml', '--dry-run', '--set', `runs_dir=${runs}`]);
    assert.equal(b.out, a.out, 'same spec, same trial ids');
    assert.equal(existsSync(join(runs, 'toy-classifier')), false, 'a dry run runs nothing');
    // an invalid trial config stops the sweep before anything runs, naming the trial
    const bad2 = await rass(['sweep', 'tests/fixtures/sweep/mixed.yaml', '--dry-run', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=-1']);
    assert.equal(bad2.code, 2);
    assert.match(bad2.err, /4 of 4 sweep trials have invalid configs \(nothing was run\)/);
    assert.match(bad2.err, /trial t[0-9a-f]{10} \(experiment\.hidden=8 experiment\.loss=.*\):\n\s+--set #2 experiment\.steps: must be >= 1, got number -1/);
  });

  it('a failing trial fails alone; a re-run skips finished trials; --retry-failed re-runs failed ones in the same run dirs', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'sweep-mixed-'));
    const first = await rass(['sweep', 'tests/fixtures/sweep/mixed.yaml', '--set', `runs_dir=${runs}`, '--max-parallel', '2']);
    assert.equal(first.code, 1, first.err);
    const trialDirs = readdirSync(join(runs, 'toy-classifier')).map((d) => join(runs, 'toy-classifier', d));
    assert.equal(trialDirs.length, 4);
    const byStatus = (s: string) => trialDirs.filter((d) => statuses(d).at(-1) === s);
    assert.equal(byStatus('FINISHED').length, 2);
    assert.equal(byStatus('FAILED').length, 2);
    // each child run names the sweep's parent run
    const parentId = readdirSync(join(runs, 'mixed'))[0];
    for (const d of trialDirs) {
      const runEv = readJournal(join(d, 'journal.jsonl')).events.find((e) => e.type === 'run');
      assert.ok(runEv && runEv.type === 'run' && runEv.parentRunId === parentId);
    }
    const parentDir = join(runs, 'mixed', parentId);
    assert.deepEqual(statuses(parentDir), ['RUNNING', 'FAILED']);
    const trials = JSON.parse(readFileSync(join(parentDir, 'artifacts', 'trials.json'), 'utf8')) as { id: string; state: string }[];
    assert.equal(trials.filter((t) => t.state === 'FAILED').length, 2);
    for (const t of trials) assert.ok(existsSync(join(parentDir, 'artifacts', 'logs', `${t.id}.log`)), 'per-trial log kept');

    const again = await rass(['sweep', 'tests/fixtures/sweep/mixed.yaml', '--set', `runs_dir=${runs}`]);
    assert.match(again.out, /4 trials \(2 finished earlier, 0 to run/);
    const retry = await rass(['sweep', 'tests/fixtures/sweep/mixed.yaml', '--set', `runs_dir=${runs}`, '--retry-failed']);
    assert.match(retry.out, /4 trials \(2 finished earlier, 2 to run/);
    assert.equal(readdirSync(join(runs, 'toy-classifier')).length, 4, 'retries reuse the trial run directories');
    assert.equal(readdirSync(join(runs, 'mixed')).length, 1, 'one parent run for the sweep');
  });

  it('a variant that switches the experiment type: its trial runs and is recorded FINISHED under its own experiment; trial logs are journaled', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'sweep-switch-'));
    const r = await rass(['sweep', 'tests/fixtures/sweep/switch-type.yaml', '--set', `runs_dir=${runs}`, '--max-parallel', '2']);
    assert.equal(r.code, 0, r.err + r.out);
    const parentDir = join(runs, 'switch-type', readdirSync(join(runs, 'switch-type'))[0]);
    const trials = JSON.parse(readFileSync(join(parentDir, 'artifacts', 'trials.json'), 'utf8')) as { id: string; runId: string; experiment: string; labels: Record<string, string>; state: string; message?: string; metrics: Record<string, number> }[];
    const by = Object.fromEntries(trials.map((t) => [t.labels.kind, t]));
    assert.equal(by.toy.state, 'FINISHED', by.toy.message);
    assert.equal(by.other.state, 'FINISHED', by.other.message);
    assert.equal(by.other.experiment, 'other-toy');
    assert.equal(by.other.metrics.score, 7, 'the sweep read the metrics of the run the trial wrote');
    assert.deepEqual(statuses(join(runs, 'other-toy', by.other.runId)), ['RUNNING', 'FINISHED']);
    assert.deepEqual(statuses(join(runs, 'toy-classifier', by.toy.runId)), ['RUNNING', 'FINISHED']);
    assert.deepEqual(statuses(parentDir), ['RUNNING', 'FINISHED']);
    // the report links each trial to its own run directory and shows its metric
    assert.match(readFileSync(join(parentDir, 'artifacts', 'report.md'), 'utf8'), new RegExp(`\\[${by.other.id}\\]\\([^)]*other-toy/${by.other.runId}[^)]*\\) \\| FINISHED`));
    // the per-trial logs are artifacts of the parent run (journaled, so trackers upload them), with their final bytes
    const journaled = new Map(readJournal(join(parentDir, 'journal.jsonl')).events.flatMap((e) => (e.type === 'artifact' ? [[e.path, e.sha256] as const] : [])));
    for (const t of trials) {
      const bytes = readFileSync(join(parentDir, 'artifacts', 'logs', `${t.id}.log`));
      assert.equal(journaled.get(`logs/${t.id}.log`), createHash('sha256').update(bytes).digest('hex'), `logs/${t.id}.log journaled with its content`);
    }
  });

  it('a NaN loss, process.exit, SIGKILL and heap exhaustion each fail their trial alone; the trials around them finish', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'sweep-crash-'));
    const r = await rass(['sweep', 'tests/fixtures/sweep/crashing.yaml', '--set', `runs_dir=${runs}`, '--max-parallel', '2']);
    assert.equal(r.code, 1, r.err);
    assert.doesNotMatch(r.err, /stale lock/, 'closing a dead trial\'s run is not worth a warning');
    const parentDir = join(runs, 'crashing', readdirSync(join(runs, 'crashing'))[0]);
    const trials = JSON.parse(readFileSync(join(parentDir, 'artifacts', 'trials.json'), 'utf8')) as { id: string; labels: Record<string, string>; runId: string; state: string; message?: string }[];
    const by = Object.fromEntries(trials.map((t) => [t.labels.loss, t]));
    assert.equal(by.ok.state, 'FINISHED');
    assert.equal(by.ok_after.state, 'FINISHED', 'a new worker ran the trial after the crashes');
    assert.match(by.nan.message ?? '', /metric "loss" became NaN at step 15/);
    assert.match(by.exit.message ?? '', /died without a final status \(exit code 3\)/);
    assert.match(by.kill.message ?? '', /died without a final status \(SIGKILL\)/);
    assert.match(by.oom.message ?? '', /died without a final status \(out of memory at the 160 MiB heap limit, SIGABRT\)/);
    assert.match(readFileSync(join(parentDir, 'artifacts', 'logs', `${by.oom.id}.log`), 'utf8'), /JavaScript heap out of memory/, 'V8\'s report is kept in the trial log');
    for (const mode of ['nan', 'exit', 'kill', 'oom']) {
      assert.equal(by[mode].state, 'FAILED', mode);
      // the executor closes the run of a trial whose process died: FAILED, lock released
      const dir = join(runs, 'toy-classifier', by[mode].runId);
      assert.deepEqual(statuses(dir), ['RUNNING', 'FAILED'], mode);
      assert.equal(existsSync(join(dir, 'lock')), false, `${mode}: lock released`);
      const steps = readJournal(join(dir, 'journal.jsonl')).events.filter((e) => e.type === 'metrics' && 'loss' in e.values).length;
      assert.equal(steps, mode === 'nan' ? 15 : 14, `${mode}: the steps before the failure stay recorded`);
    }
    // crashed trials are FAILED, not interrupted: a plain re-run leaves them for --retry-failed
    const again = await rass(['sweep', 'tests/fixtures/sweep/crashing.yaml', '--set', `runs_dir=${runs}`]);
    assert.match(again.out, /6 trials \(2 finished earlier, 0 to run/);
  });

  it('trial_timeout_s: a slow trial is stopped with a checkpoint, a hung one is killed; both FAILED, not resumed by a plain re-run', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'sweep-timeout-'));
    const t0 = Date.now();
    const r = await rass(['sweep', 'tests/fixtures/sweep/timeout.yaml', '--set', `runs_dir=${runs}`, '--max-parallel', '2']);
    assert.equal(r.code, 1, r.err);
    assert.ok(Date.now() - t0 < 30_000, 'the sweep did not wait for the 2000-step trials');
    const parentDir = join(runs, 'timeout', readdirSync(join(runs, 'timeout'))[0]);
    const trials = JSON.parse(readFileSync(join(parentDir, 'artifacts', 'trials.json'), 'utf8')) as { id: string; labels: Record<string, string>; runId: string; state: string; message?: string }[];
    const by = Object.fromEntries(trials.map((t) => [t.labels.loss, t]));
    for (const mode of ['slow', 'hang']) {
      assert.equal(by[mode].state, 'FAILED', mode);
      assert.match(by[mode].message ?? '', /timed out after 4 s \(trial_timeout_s\); --retry-failed resumes it/, mode);
      assert.match(readFileSync(join(parentDir, 'artifacts', 'logs', `${by[mode].id}.log`), 'utf8'), /trial timeout: 4 s of wall time used/);
    }
    const slowDir = join(runs, 'toy-classifier', by.slow.runId);
    assert.deepEqual(statuses(slowDir), ['RUNNING', 'KILLED', 'FAILED'], 'the slow trial stopped itself, then the executor failed it');
    assert.ok(readdirSync(join(slowDir, 'checkpoints')).length >= 1, 'the slow trial checkpointed when stopped');
    assert.deepEqual(statuses(join(runs, 'toy-classifier', by.hang.runId)), ['RUNNING', 'FAILED'], 'the hung trial was killed and closed by the executor');
    const again = await rass(['sweep', 'tests/fixtures/sweep/timeout.yaml', '--set', `runs_dir=${runs}`]);
    assert.match(again.out, /2 trials \(0 finished earlier, 0 to run/);
  });

  it('a worker that cannot start fails its trials with the reason, and the sweep ends instead of hanging', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'sweep-nostart-'));
    const r = await rass(['sweep', 'tests/fixtures/sweep/mixed.yaml', '--set', `runs_dir=${runs}`, '--set', 'sweep.executor={type: local, node_args: [--no-such-node-flag]}']);
    assert.equal(r.code, 1, r.err);
    const parentDir = join(runs, 'mixed', readdirSync(join(runs, 'mixed'))[0]);
    const trials = JSON.parse(readFileSync(join(parentDir, 'artifacts', 'trials.json'), 'utf8')) as { id: string; state: string; message?: string }[];
    assert.equal(trials.length, 4);
    for (const t of trials) {
      assert.equal(t.state, 'FAILED');
      assert.match(t.message ?? '', /the trial worker failed to start \(exit code 9\): .*bad option: --no-such-node-flag/);
      assert.match(readFileSync(join(parentDir, 'artifacts', 'logs', `${t.id}.log`), 'utf8'), /failed to start/);
    }
    assert.equal(existsSync(join(runs, 'toy-classifier')), false, 'no trial run was created');
  });

  it('SIGINT (Ctrl-C to the process group) stops running trials once, marks unfinished trials KILLED, and a re-run resumes them', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'sweep-int-'));
    const args = ['sweep', 'configs/toy/lr-hidden-sweep.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=600', '--max-parallel', '2'];
    const job = startGroup([bin, ...args], { cwd: process.cwd() });
    const expDir = join(runs, 'toy-classifier');
    const stepsLogged = (d: string) => readJournal(join(expDir, d, 'journal.jsonl')).events.filter((e) => e.type === 'metrics').length;
    // training (20+ steps logged) and not finished yet: both workers are mid-trial
    const running = () => (existsSync(expDir) ? readdirSync(expDir).filter((d) => existsSync(join(expDir, d, 'journal.jsonl')) && stepsLogged(d) >= 20 && statuses(join(expDir, d)).at(-1) === 'RUNNING') : []);
    assert.ok(await job.waitFor(() => running().length === 2, 60_000), 'two trials training before the interrupt');
    job.signal('SIGINT'); // what a terminal's Ctrl-C does: the sweep and its workers get it
    assert.equal(await job.exited, 130);
    assert.match(job.out(), /stopping \(2 running trials get SIGINT\)/);
    const parentDir = join(runs, 'toy-lr-hidden', readdirSync(join(runs, 'toy-lr-hidden'))[0]);
    assert.equal(statuses(parentDir).at(-1), 'KILLED');
    const trials = JSON.parse(readFileSync(join(parentDir, 'artifacts', 'trials.json'), 'utf8')) as { runId: string; state: string }[];
    const finished = trials.filter((t) => t.state === 'FINISHED');
    assert.equal(trials.filter((t) => t.state === 'KILLED').length, 8 - finished.length, 'every unfinished trial is KILLED');
    const interrupted = readdirSync(expDir).filter((d) => statuses(join(expDir, d)).at(-1) !== 'FINISHED');
    assert.ok(interrupted.length >= 1);
    for (const d of interrupted) {
      const ev = readJournal(join(expDir, d, 'journal.jsonl')).events;
      const last = ev.at(-1)!;
      // stopped once, cleanly: SIGINT (not a second signal's hurry), with a checkpoint to resume from
      assert.equal(last.type === 'status' && last.message, 'killed by SIGINT', d);
      assert.ok(readdirSync(join(expDir, d, 'checkpoints')).length >= 1, `${d}: checkpoint kept`);
    }
    const resumed = await rass(args);
    assert.equal(resumed.code, 0, resumed.err + resumed.out);
    assert.match(resumed.out, new RegExp(`8 trials \\(${finished.length} finished earlier, ${8 - finished.length} to run`));
    assert.equal(readdirSync(expDir).length, 8, 'no duplicate trial runs');
    for (const d of interrupted) assert.deepEqual(statuses(join(expDir, d)), ['RUNNING', 'KILLED', 'RUNNING', 'FINISHED'], `${d} resumed in place`);
  });

  it('a sweep killed with SIGKILL resumes without redoing finished trials', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'sweep-kill-'));
    const args = ['sweep', 'configs/toy/lr-hidden-sweep.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=400', '--max-parallel', '1'];
    const job = startGroup([bin, ...args], { cwd: process.cwd() });
    assert.ok(await job.waitFor(() => /\[2\/8\] \S+ FINISHED/.test(job.out()), 60_000), 'two trials finished before the kill');
    job.signal('SIGKILL'); // the sweep and its running trial, like a lost machine
    await job.exited;
    await job.groupGone(); // its trial worker too, as after a lost machine
    const finishedBefore = readdirSync(join(runs, 'toy-classifier')).filter((d) => statuses(join(runs, 'toy-classifier', d)).at(-1) === 'FINISHED');
    assert.ok(finishedBefore.length >= 2);
    const resumed = await rass(args);
    assert.equal(resumed.code, 0, resumed.err + resumed.out);
    assert.match(resumed.out, new RegExp(`8 trials \\(${finishedBefore.length} finished earlier, ${8 - finishedBefore.length} to run`));
    const dirs = readdirSync(join(runs, 'toy-classifier'));
    assert.equal(dirs.length, 8, 'no duplicate trial runs');
    for (const d of finishedBefore) assert.deepEqual(statuses(join(runs, 'toy-classifier', d)), ['RUNNING', 'FINISHED'], `${d} was not run again`);
    for (const d of dirs) assert.equal(statuses(join(runs, 'toy-classifier', d)).at(-1), 'FINISHED');
  });
});

describe('sweep reports', () => {
  it('the parent run gets report.md and a self-contained report.html: trials x metrics (best marked), one chart per axis', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'sweep-report-'));
    const r = await rass(['sweep', 'configs/toy/lr-hidden-sweep.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=30', '--set', 'sweep.repeats=1', '--max-parallel', '2']);
    assert.equal(r.code, 0, r.err + r.out);
    const parentDir = join(runs, 'toy-lr-hidden', readdirSync(join(runs, 'toy-lr-hidden'))[0]);
    const html = readFileSync(join(parentDir, 'artifacts', 'report.html'), 'utf8');
    assert.doesNotMatch(html, /<script|<link|src="http/, 'self-contained');
    const rows = [...html.matchAll(/<tr><td class="id"><a href="[^"]*">(t[0-9a-f]{10})<\/a>/g)].map((m) => m[1]);
    assert.equal(rows.length, 4);
    // the highlighted test_accuracy is the maximum over the trials' own journals
    const accs = readdirSync(join(runs, 'toy-classifier')).map((d) => {
      const ev = readJournal(join(runs, 'toy-classifier', d, 'journal.jsonl')).events;
      const last = ev.filter((e) => e.type === 'metrics' && e.values.test_accuracy !== undefined).at(-1);
      return last && last.type === 'metrics' ? last.values.test_accuracy : NaN;
    });
    const header = [...html.matchAll(/<th>([^<]*)<\/th>/g)].map((m) => m[1]);
    const col = header.indexOf('test_accuracy');
    assert.ok(col > 0);
    const bestCells = [...html.matchAll(/<tr>(.*?)<\/tr>/g)].map((m) => [...m[1].matchAll(/<td([^>]*)>(.*?)<\/td>/g)]).filter((cells) => cells.length === header.length && / class="best"/.test(cells[col][1]));
    assert.ok(bestCells.length >= 1);
    assert.equal(Number(bestCells[0][col][2]), Number(Math.max(...accs).toPrecision(4)));
    // one chart per ablation axis (lr, hidden), each with one bar per axis value
    const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    assert.equal(svgs.length, 2);
    for (const svg of svgs) assert.equal((svg.match(/<rect class="bar"/g) ?? []).length, 2);
    const md = readFileSync(join(parentDir, 'artifacts', 'report.md'), 'utf8');
    assert.match(md, /^\| trial \| state \| experiment\.lr \| experiment\.hidden \|/m);
    const arts = readJournal(join(parentDir, 'journal.jsonl')).events.flatMap((e) => (e.type === 'artifact' ? [e.path] : []));
    assert.ok(arts.includes('report.html') && arts.includes('report.md') && arts.includes('trials.json'));
    // `rass report` regenerates it from the run store
    const again = await rass(['report', parentDir]);
    assert.equal(again.code, 0, again.err);
    assert.equal(readFileSync(join(parentDir, 'artifacts', 'report.html'), 'utf8'), html);
    // the sweep says where its reports are
    assert.match(r.out, new RegExp(`report written to ${join(parentDir, 'artifacts', 'report.md')} and ${join(parentDir, 'artifacts', 'report.html')}`));
    // every trial link of both reports opens that trial's run (links are relative to artifacts/)
    const trials = JSON.parse(readFileSync(join(parentDir, 'artifacts', 'trials.json'), 'utf8')) as { id: string; runId: string }[];
    const links = [
      ...[...html.matchAll(/<a href="([^"]*)">(t[0-9a-f]{10})<\/a>/g)].map((m) => ({ href: m[1], id: m[2], from: 'html' })),
      ...[...md.matchAll(/\[(t[0-9a-f]{10})\]\(([^)]*)\)/g)].map((m) => ({ href: m[2], id: m[1], from: 'md' })),
    ];
    assert.equal(links.length, 8, 'four trials, linked from both reports');
    for (const l of links) {
      const target = resolve(parentDir, 'artifacts', decodeURI(l.href));
      const runEv = existsSync(join(target, 'journal.jsonl')) ? readJournal(join(target, 'journal.jsonl')).events.find((e) => e.type === 'run') : undefined;
      assert.ok(runEv && runEv.type === 'run', `${l.from} link ${l.href} of ${l.id} does not open a run (${target})`);
      assert.equal(runEv.runId, trials.find((t) => t.id === l.id)?.runId, `${l.from} link of ${l.id} opens another run`);
    }
    // `rass report` also takes the sweep's name
    const byName = await rass(['report', 'toy-lr-hidden', '--runs-dir', runs]);
    assert.equal(byName.code, 0, byName.err);
    assert.equal(byName.out, `${join(parentDir, 'artifacts', 'report.md')}\n${join(parentDir, 'artifacts', 'report.html')}\n`);
    const unknown = await rass(['report', 'no-such-sweep', '--runs-dir', runs]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /no sweep named "no-such-sweep"/);
  });
});
