/**
 * The runner in process: the example external plugin discovered from a config and used; a
 * duplicate plugin name failing with both sources; bad input failing with one message and
 * no run directory; an experiment error ending FAILED with its message; a stopped run
 * resumed to the same result as an uninterrupted one; `rass runs list/show/compare`.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { runExperiment, type RunnerOptions } from '../../../framework/runner/runner.js';
import { readJournal } from '../../../framework/tracking/journal.js';
import type { JournalEvent } from '../../../framework/tracking/events.js';
import type { TrackerFactory } from '../../../framework/tracking/tracker.js';
import { FIXTURES, ROOT, cli, registry, streams, tempDir } from './helpers.js';

function opts(runsDir: string, over: Partial<RunnerOptions>): RunnerOptions {
  const s = streams();
  return { registry: registry(), cwd: ROOT, env: {}, stdout: s.stdout, stderr: s.stderr, trackerFactories: [], sets: [`runs_dir=${runsDir}`], ...over };
}

const statuses = (ev: JournalEvent[]) => ev.filter((e) => e.type === 'status').map((e) => (e.type === 'status' ? e.status : ''));

/** A tracker that aborts the run after `n` journal appends (a deterministic "signal" mid-training). */
function abortAfter(n: number, controller: AbortController): TrackerFactory {
  return async () => {
    let seen = 0;
    return {
      name: 'abort-after',
      onAppend: () => {
        if (++seen === n) controller.abort();
      },
      flush: async () => {},
      close: async () => {},
    };
  };
}

describe('runner', () => {
  it('discovers the example external plugin from the config and trains with its loss', async () => {
    const runs = tempDir('ext');
    const r = await cli(['run', join(FIXTURES, 'custom-loss.yaml'), '--set', `runs_dir=${runs}`]);
    assert.equal(r.code, 0, r.err);
    const [dir] = readdirSync(join(runs, 'toy-classifier')).map((d) => join(runs, 'toy-classifier', d));
    const { events, torn, errors } = readJournal(join(dir, 'journal.jsonl'));
    assert.equal(torn, undefined);
    assert.deepEqual(errors, []);
    const params = Object.assign({}, ...events.filter((e) => e.type === 'params').map((e) => (e.type === 'params' ? e.params : {})));
    assert.equal(params['experiment.loss.type'], 'loss/label-smoothing-ce');
    assert.equal(params['experiment.loss.smoothing'], '0.2');
    // Label smoothing puts a floor under the loss: the entropy of the smoothed target,
    // H(q) with q = (0.8 + 0.2/3, 0.2/3, 0.2/3) = 0.4851 nats. Plain cross-entropy on this
    // data goes well below it, so every logged loss above the floor shows which loss ran.
    const q = [0.8 + 0.2 / 3, 0.2 / 3, 0.2 / 3];
    const floor = -q.reduce((a, p) => a + p * Math.log(p), 0);
    const losses = events.flatMap((e) => (e.type === 'metrics' && e.values.loss !== undefined ? [e.values.loss] : []));
    assert.equal(losses.length, 60);
    assert.ok(losses.every((l) => l >= floor - 1e-5), `a loss below the smoothing floor ${floor}: ${Math.min(...losses)}`);
    assert.ok(losses[59] < losses[0], 'training lowered the loss');
    assert.deepEqual(statuses(events), ['RUNNING', 'FINISHED']);
    // the run's config.yaml names the package by absolute path, so --resume finds it from the run dir
    assert.match(readFileSync(join(dir, 'config.yaml'), 'utf8'), new RegExp(`${join(ROOT, 'examples', 'custom-loss').replace(/[/\\]/g, '.')}`));
  });

  it('a duplicate plugin name fails before the run starts, naming both sources', async () => {
    const runs = tempDir('dup');
    const r = await cli(['run', join(FIXTURES, 'dup-plugins.yaml'), '--set', `runs_dir=${runs}`]);
    assert.equal(r.code, 2);
    assert.match(r.err, /duplicate plugin loss\/label-smoothing-ce: defined by rass-example-custom-loss \(.*examples\/custom-loss\) and by rass-test-dup-loss \(\.\/dup-loss\)/);
    assert.equal(r.err.trim().split('\n').length, 1, `one message: ${r.err}`);
    assert.equal(existsSync(runs) && readdirSync(runs).length, 0, 'no run directory');
  });

  it('bad input: one clear message naming the key, no run directory', async () => {
    const runs = tempDir('bad');
    const r = await cli(['run', join(FIXTURES, 'small.yaml'), '--set', `runs_dir=${runs}`, '--set', 'experiment.stpes=5']);
    assert.equal(r.code, 2);
    assert.match(r.err, /stpes/);
    assert.equal(r.out, '');
    assert.equal(readdirSync(runs).length, 0);
    const missing = await cli(['run', join(FIXTURES, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /nope\.yaml/);
    const none = await cli(['run']);
    assert.equal(none.code, 2);
    assert.match(none.err, /which config/);
  });

  it('an error inside the experiment ends the run FAILED with its message, keeping what was logged', async () => {
    const runs = tempDir('fail');
    const r = await cli(['run', join(FIXTURES, 'failing.yaml'), '--set', `runs_dir=${runs}`]);
    assert.equal(r.code, 1);
    assert.match(r.err, /loss exploded on call 7/);
    const [dir] = readdirSync(join(runs, 'toy-classifier')).map((d) => join(runs, 'toy-classifier', d));
    const { events } = readJournal(join(dir, 'journal.jsonl'));
    const last = events[events.length - 1];
    assert.equal(last.type, 'status');
    assert.equal(last.type === 'status' && last.status, 'FAILED');
    assert.match(last.type === 'status' ? (last.message ?? '') : '', /loss exploded on call 7/);
    assert.equal(events.filter((e) => e.type === 'metrics').length, 6, 'the six steps before the failure stay recorded');
    assert.equal(existsSync(join(dir, 'lock')), false, 'lock released');
    const list = await cli(['runs', 'list', '--runs-dir', runs]);
    assert.match(list.out, /failing\s+FAILED/);
  });

  it('a loss that becomes NaN fails the run at that step (fail_on_nan), keeping the NaN on record; fail_on_nan=false trains on', async () => {
    const runs = tempDir('nan');
    const r = await cli(['run', join(FIXTURES, 'nan.yaml'), '--set', `runs_dir=${runs}`]);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /run failed: metric "loss" became NaN at step 12/);
    assert.doesNotMatch(r.err, /at .*nan-guard/, 'a policy stop is explained, not a stack trace');
    const [dir] = readdirSync(join(runs, 'toy-classifier')).map((d) => join(runs, 'toy-classifier', d));
    const { events } = readJournal(join(dir, 'journal.jsonl'));
    const last = events[events.length - 1];
    assert.equal(last.type === 'status' && last.status, 'FAILED');
    assert.match(last.type === 'status' ? (last.message ?? '') : '', /metric "loss" became NaN at step 12/);
    const losses = events.flatMap((e) => (e.type === 'metrics' && 'loss' in e.values ? [[e.step, e.values.loss]] : []));
    assert.equal(losses.length, 12, 'steps 1..12 recorded, nothing after the NaN');
    assert.ok(losses.slice(0, 11).every(([, l]) => Number.isFinite(l)));
    assert.ok(losses[11][1] === null || Number.isNaN(losses[11][1]), 'the NaN itself is journaled (as null)');

    const off = await cli(['run', join(FIXTURES, 'nan.yaml'), '--set', `runs_dir=${runs}`, '--set', 'fail_on_nan=false']);
    assert.equal(off.code, 0, off.err);
    const offDir = readdirSync(join(runs, 'toy-classifier')).map((d) => join(runs, 'toy-classifier', d)).find((d) => d !== dir)!;
    const offEvents = readJournal(join(offDir, 'journal.jsonl')).events;
    assert.equal(offEvents.filter((e) => e.type === 'metrics' && 'loss' in e.values).length, 50, 'policy off: all 50 steps ran');
  });

  it('creates trackers per run, tells them about every append, closes them after the final status; --name names the run', async () => {
    const runs = tempDir('trackers');
    const calls: string[] = [];
    let info: { runId: string; dir: string; experiment: string; config: Record<string, unknown> } | undefined;
    let appends = 0;
    const factory: TrackerFactory = async (run) => {
      info = run;
      return {
        name: 'probe',
        onAppend: () => void appends++,
        flush: async () => void calls.push('flush'),
        close: async () => {
          calls.push('close');
          const ev = readJournal(join(run.dir, 'journal.jsonl')).events;
          calls.push(`last:${ev[ev.length - 1].type === 'status' ? (ev[ev.length - 1] as { status: string }).status : '?'}`);
        },
      };
    };
    const out = await runExperiment(opts(runs, { configFile: join(FIXTURES, 'small.yaml'), name: 'named-run', trackerFactories: [factory], sets: [`runs_dir=${runs}`, 'experiment.steps=10'] }));
    assert.equal(out.status, 'FINISHED');
    assert.equal(info?.runId, out.runId);
    assert.equal(info?.dir, out.dir);
    assert.equal(info?.experiment, 'toy-classifier');
    assert.equal((info?.config.experiment as { steps: number }).steps, 10);
    const events = readJournal(join(out.dir, 'journal.jsonl')).events;
    // the run and first status events precede the trackers; every later append is announced
    assert.equal(appends, events.length - 2);
    assert.deepEqual(calls.slice(-2), ['close', 'last:FINISHED']);
    const runEv = events[0];
    assert.equal(runEv.type === 'run' && runEv.name, 'named-run');
  });

  describe('stop and resume', () => {
    const runs = tempDir('resume');
    let full: { metrics: Record<string, number>; dir: string };
    let stopped: { runId: string; dir: string };

    before(async () => {
      full = await runExperiment(opts(runs, { configFile: join(FIXTURES, 'small.yaml') }));
    });

    it('a stopped run is KILLED with a checkpoint; --resume continues it to the same result', async () => {
      const controller = new AbortController();
      const out = await runExperiment(opts(runs, { configFile: join(FIXTURES, 'small.yaml'), signal: controller.signal, trackerFactories: [abortAfter(40, controller)] }));
      stopped = out;
      assert.equal(out.status, 'KILLED');
      assert.equal(out.exitCode, 143);
      const before = readJournal(join(out.dir, 'journal.jsonl')).events;
      assert.deepEqual(statuses(before), ['RUNNING', 'KILLED']);
      const lastStep = Math.max(...before.flatMap((e) => (e.type === 'metrics' ? [e.step] : [])));
      assert.ok(lastStep > 20 && lastStep < 80, `stopped mid-training (step ${lastStep})`);
      assert.equal(readFileSync(join(out.dir, 'checkpoints', 'LATEST'), 'utf8').trim(), `step-${String(lastStep).padStart(6, '0')}`);

      const resumed = await runExperiment(opts(runs, { resume: out.runId.slice(0, 18), sets: [], runsDir: runs }));
      assert.equal(resumed.runId, out.runId);
      assert.equal(resumed.dir, out.dir);
      assert.equal(resumed.status, 'FINISHED');
      const { events, torn, errors } = readJournal(join(out.dir, 'journal.jsonl'));
      assert.equal(torn, undefined);
      assert.deepEqual(errors, []);
      assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i), 'seq contiguous across the resume');
      assert.deepEqual(statuses(events), ['RUNNING', 'KILLED', 'RUNNING', 'FINISHED']);
      const steps = events.flatMap((e) => (e.type === 'metrics' && e.values.loss !== undefined ? [e.step] : []));
      assert.deepEqual(steps, Array.from({ length: 80 }, (_, i) => i + 1), 'every step exactly once');
      // same batches, same weights and Adam state from the checkpoint: the same model
      for (const k of ['test_loss', 'test_accuracy']) assert.ok(Math.abs(resumed.metrics[k] - full.metrics[k]) < 1e-6, `${k}: resumed ${resumed.metrics[k]} vs uninterrupted ${full.metrics[k]}`);
    });

    it('relative paths in a resumed run resolve where the first attempt resolved them (the config file; a --set against its cwd)', async () => {
      // A plugin package whose loss reads its smoothing from a file named by a relative path
      // (ctx.resolvePath); the config lives in its own folder. The resume runs from another cwd
      // and loads the run's own config.yaml, which lives in the run directory.
      const root = tempDir('resume-paths');
      mkdirSync(join(root, 'pkg'));
      mkdirSync(join(root, 'cfg', 'tables'), { recursive: true });
      writeFileSync(join(root, 'pkg', 'package.json'), JSON.stringify({ name: 'rass-test-file-loss', version: '0.1.0', type: 'module', exports: './index.js' }));
      writeFileSync(
        join(root, 'pkg', 'index.js'),
        `import { readFileSync } from 'node:fs';
export default (rass) => {
  const { tf } = rass;
  const fileLoss = rass.definePlugin({
    kind: 'loss', name: 'file-smoothing', description: 'label smoothing read from a file',
    schema: { type: 'object', additionalProperties: false, required: ['table'], properties: { table: { type: 'string' } } },
    create(o, ctx) {
      const eps = JSON.parse(readFileSync(ctx.resolvePath(o.table), 'utf8')).smoothing;
      return { compute(logits, onehot) {
        const [batch, classes] = logits.shape;
        const q = tf.add(tf.mul(onehot, 1 - eps), eps / classes);
        const logp = tf.logSoftmax(logits);
        return { loss: tf.div(tf.neg(tf.sum(tf.mul(logp, q))), batch), dLogits: tf.div(tf.sub(tf.exp(logp), q), batch) };
      } };
    },
  });
  return rass.pluginPackage({ name: 'rass-test-file-loss', plugins: [fileLoss] });
};
`,
      );
      writeFileSync(join(root, 'cfg', 'tables', 'smoothing.json'), JSON.stringify({ smoothing: 0.2 }));
      writeFileSync(join(root, 'cfg', 'run.yaml'), ['plugins: [../pkg]', 'name: paths', 'seed: 7', 'backend: cpu', 'experiment:', '  type: experiment/toy-classifier', '  steps: 60', '  eval_every: 30', '  checkpoint_every: 10', '  loss: { type: loss/file-smoothing, table: tables/smoothing.json }', ''].join('\n'));
      mkdirSync(join(root, 'elsewhere'));
      writeFileSync(join(root, 'elsewhere', 'half.json'), JSON.stringify({ smoothing: 0.5 }));
      const runsDir = join(root, 'runs');
      for (const [label, sets, cwd, floorEps] of [
        ['from the config file', [], root, 0.2],
        // a --set that writes the whole node: its paths resolve against the cwd it was given in
        ['from a --set', ['experiment.loss={type: loss/file-smoothing, table: half.json}'], join(root, 'elsewhere'), 0.5],
      ] as const) {
        const controller = new AbortController();
        const first = await runExperiment(opts(runsDir, { cwd, configFile: join(root, 'cfg', 'run.yaml'), sets: [`runs_dir=${runsDir}`, ...sets], signal: controller.signal, trackerFactories: [abortAfter(25, controller)] }));
        assert.equal(first.status, 'KILLED', label);
        const resumed = await runExperiment(opts(runsDir, { cwd: ROOT, resume: first.dir, sets: [], runsDir }));
        assert.equal(resumed.status, 'FINISHED', `${label}: ${resumed.status}`);
        // the smoothing the loss read puts a floor under every logged loss: H(q)
        const q = [1 - floorEps + floorEps / 3, floorEps / 3, floorEps / 3];
        const floor = -q.reduce((a, p) => a + p * Math.log(p), 0);
        const losses = readJournal(join(first.dir, 'journal.jsonl')).events.flatMap((e) => (e.type === 'metrics' && e.values.loss !== undefined ? [e.values.loss] : []));
        assert.equal(losses.length, 60, label);
        assert.ok(losses.every((l) => l >= floor - 1e-5), `${label}: a loss below the smoothing floor ${floor}: ${Math.min(...losses)}`);
      }
    });

    it('a run locked by a live process is not resumed; --resume refuses --set', async () => {
      writeFileSync(join(stopped.dir, 'lock'), JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString() }));
      // (the run FINISHED above: --force gets past the FINISHED refusal to the lock)
      await assert.rejects(runExperiment(opts(runs, { resume: stopped.dir, sets: [], force: true })), new RegExp(`locked by process ${process.pid}`));
      await assert.rejects(runExperiment(opts(runs, { resume: stopped.dir, sets: ['seed=1'] })), /--set is not allowed/);
    });

    it('rass runs list / show / compare', async () => {
      const list = await cli(['runs', 'list', '--runs-dir', runs]);
      assert.equal(list.code, 0, list.err);
      const lines = list.out.trim().split('\n');
      assert.match(lines[0], /^run\s+experiment\s+name\s+status\s+start \(UTC\)\s+duration\s+last metrics$/);
      assert.equal(lines.length, 4);
      assert.ok(lines.slice(2).every((l) => /toy-classifier\s+small\s+FINISHED/.test(l)));
      assert.match(lines[2], /accuracy=\d\.\d{4}/);

      const show = await cli(['runs', 'show', stopped.runId, '--runs-dir', runs]);
      assert.equal(show.code, 0, show.err);
      assert.match(show.out, /status\s+FINISHED/);
      assert.match(show.out, /experiment\.hidden\s+16/);
      assert.match(show.out, /test_accuracy\s+\d\.\d{4}\s+80/);
      assert.match(show.out, /rass\.config_hash\s+[0-9a-f]{16}/);
      assert.match(show.out, /confusion_matrix\.csv\s+\d+\s+[0-9a-f]{16}/);

      const cmp = await cli(['runs', 'compare', full.dir, stopped.runId, '--runs-dir', runs]);
      assert.equal(cmp.code, 0, cmp.err);
      assert.match(cmp.out, /params: identical/);
      assert.match(cmp.out, /test_accuracy\s+(\d\.\d{4})\s+\1/);

      const ambiguous = await cli(['runs', 'show', '2', '--runs-dir', runs]);
      assert.equal(ambiguous.code, 2);
      assert.match(ambiguous.err, /ambiguous/);
      const one = await cli(['runs', 'compare', full.dir, '--runs-dir', runs]);
      assert.equal(one.code, 2);
    });
  });
});
