/**
 * The MLflow tracker and `runs sync` against a real MLflow server (sqlite backend, artifact
 * proxy): everything logged is read back through the REST API and compared with the journal.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MlflowClient } from '../../../framework/tracking/mlflow/client.js';
import { MLFLOW_LIMITS } from '../../../framework/tracking/mlflow/limits.js';
import { LOCAL_RUN_ID_TAG, ensureRemoteRun } from '../../../framework/tracking/mlflow/remote-run.js';
import { readState } from '../../../framework/tracking/mlflow/state.js';
import { MlflowTracker } from '../../../framework/tracking/mlflow/tracker.js';
import { mlflowTrackerFactory } from '../../../framework/tracking/mlflow/factory.js';
import { syncRuns } from '../../../framework/tracking/sync.js';
import { type MlflowServer, mlflowSkipped, startMlflowServer } from '../../../scripts/mlflow/server.js';
import { TestRun, detBytes, removeTempStores, tempStore } from './helpers.js';
import { assertMirrors } from './mirror-assert.js';

const skip = mlflowSkipped();
const FAST = { retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 } };

describe('MLflow tracking against a real server', { skip }, () => {
  let server: MlflowServer;
  let client: MlflowClient;
  before(async () => {
    server = await startMlflowServer();
    client = new MlflowClient({ uri: server.uri, ...FAST });
  });
  after(async () => {
    await server?.stop();
    removeTempStores();
  });

  /** A representative run: params (one too long), tags, metrics (one step wider than a batch), input, artifacts. */
  function writeRun(root: string, id: string, opts: { parentRunId?: string; steps?: number } = {}): TestRun {
    const run = new TestRun(root, 'exp-rt', id, { parentRunId: opts.parentRunId, name: `name-${id}`, config: `experiment:\n  type: experiment/scr\nseed: 7\n` });
    run.append({ type: 'params', params: { lr: '0.001', batch_size: '4', long_text: 'x'.repeat(MLFLOW_LIMITS.paramValueLength + 500) } });
    run.append({ type: 'tags', tags: { dataset: 'shapes', 'rass.backend': 'cpu' } });
    run.append({ type: 'input', name: 'shapes-train', digest: 'd41d8cd98f00b204', source: 'procedural://shapes?seed=7', context: 'train' });
    const steps = opts.steps ?? 30;
    for (let s = 0; s < steps; s++) run.append({ type: 'metrics', step: s, values: { loss: 1 / (s + 1), 'val/miou': s * 0.01, lr: 0.001 } });
    // One event with more values than fit in one log-batch call.
    run.append({ type: 'metrics', step: steps, values: Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`wide/m${i}`, i + 0.5])) });
    run.artifact('tables/results.csv', Buffer.from('class,iou\nsky,0.91\nroad,0.88\n'));
    run.artifact('images/sample.png', detBytes(70_000, `png-${id}`));
    run.append({ type: 'status', status: 'FINISHED' });
    return run;
  }

  it('live tracker mirrors params, every metric point, tags, inputs, artifacts and status', async () => {
    const root = tempStore();
    const run = writeRun(root, 'run-live');
    const warnings: string[] = [];
    const tracker = new MlflowTracker({ client, dir: run.dir, batchWindowMs: 5, warn: (m) => warnings.push(m), log: (m) => warnings.push(m) });
    tracker.onAppend();
    await tracker.close({ timeoutMs: 60_000 });
    const state = readState(run.dir).targets[server.uri];
    assert.ok(state, 'mlflow.json maps the run');
    assert.equal(state.ackedSeq, run.events.length - 1);
    await assertMirrors(client, run, state.runId, { truncatedParams: ['long_text'] });

    const remote = await client.getRun(state.runId);
    const tags = new Map((remote.data.tags ?? []).map((t) => [t.key, t.value]));
    assert.equal(tags.get('mlflow.runName'), 'name-run-live');
    assert.equal(tags.get('mlflow.source.type'), 'LOCAL');
    assert.ok(tags.get('mlflow.user'));
    assert.match(tags.get('mlflow.note.content') ?? '', /type: experiment\/scr/);
    const long = remote.data.params?.find((p) => p.key === 'long_text');
    assert.equal(long?.value.length, MLFLOW_LIMITS.paramValueLength, 'a too-long param is truncated to MLflow\'s limit, not refused');
    assert.ok(warnings.some((w) => w.includes('long_text') && w.includes('truncated')), 'truncation is reported');
    // The resolved config is an artifact too.
    const cfg = await client.downloadArtifact(remote.info.artifact_uri, 'config.yaml');
    assert.equal(cfg.toString(), readFileSync(join(run.dir, 'config.yaml'), 'utf8'));
    const ds = remote.inputs?.dataset_inputs?.[0];
    assert.equal(ds?.dataset.name, 'shapes-train');
    assert.equal(ds?.dataset.digest, 'd41d8cd98f00b204');
    assert.equal(ds?.dataset.source, 'procedural://shapes?seed=7');
    assert.deepEqual(ds?.tags, [{ key: 'mlflow.data.context', value: 'train' }]);
  });

  it('tracker ships while the run is being written, including a torn last line', async () => {
    const root = tempStore();
    const run = new TestRun(root, 'exp-rt', 'run-tail', { config: 'seed: 1\n' });
    const tracker = new MlflowTracker({ client, dir: run.dir, batchWindowMs: 2 });
    for (let s = 0; s < 40; s++) {
      run.append({ type: 'metrics', step: s, values: { loss: s } });
      tracker.onAppend();
      if (s % 10 === 0) await new Promise((r) => setTimeout(r, 15));
    }
    // Half a line: a write in progress must not be parsed or acknowledged.
    const finish = run.appendTorn({ type: 'metrics', step: 40, values: { loss: 40 } });
    tracker.onAppend();
    await tracker.flush({ timeoutMs: 30_000 });
    assert.equal(readState(run.dir).targets[server.uri].ackedSeq, 40, 'acknowledged up to the last complete line');
    finish();
    run.append({ type: 'status', status: 'FINISHED' });
    tracker.onAppend();
    await tracker.close({ timeoutMs: 30_000 });
    await assertMirrors(client, run, readState(run.dir).targets[server.uri].runId);
  });

  it('a sweep is a parent run with one child per trial, the parent created once', async () => {
    const root = tempStore();
    const parent = new TestRun(root, 'exp-sweep', 'sweep-1', { name: 'sweep' });
    parent.append({ type: 'params', params: { sweep: 'lr in [1e-3, 1e-4, 1e-5]' } });
    const children = ['trial-0', 'trial-1', 'trial-2'].map((id, i) => {
      const c = new TestRun(root, 'exp-sweep', id, { parentRunId: 'sweep-1' });
      c.append({ type: 'params', params: { lr: String(10 ** -(3 + i)) } });
      c.append({ type: 'metrics', step: 0, values: { miou: 0.5 + i / 10 } });
      c.append({ type: 'status', status: 'FINISHED' });
      return c;
    });
    // Children ship concurrently before the parent's own tracker: the parent is created exactly once.
    await Promise.all(children.map(async (c) => {
      const t = new MlflowTracker({ client, dir: c.dir, batchWindowMs: 1 });
      t.onAppend();
      await t.close({ timeoutMs: 30_000 });
    }));
    parent.append({ type: 'status', status: 'FINISHED' });
    const pt = new MlflowTracker({ client, dir: parent.dir, batchWindowMs: 1 });
    await pt.close({ timeoutMs: 30_000 });
    const parentId = readState(parent.dir).targets[server.uri].runId;
    const expId = readState(parent.dir).targets[server.uri].experimentId;
    const parents = await client.searchAllRuns([expId], `tags.\`${LOCAL_RUN_ID_TAG}\` = 'sweep-1'`);
    assert.equal(parents.length, 1, 'one MLflow run for the sweep parent');
    const kids = await client.searchAllRuns([expId], `tags.\`mlflow.parentRunId\` = '${parentId}'`);
    assert.deepEqual(kids.map((k) => k.data.tags?.find((t) => t.key === LOCAL_RUN_ID_TAG)?.value).sort(), ['trial-0', 'trial-1', 'trial-2']);
    for (const c of children) await assertMirrors(client, c, readState(c.dir).targets[server.uri].runId);
    await assertMirrors(client, parent, parentId);
  });

  it('runs sync uploads an offline run; a second sync uploads nothing new', async () => {
    const root = tempStore();
    const run = writeRun(root, 'run-offline', { steps: 12 });
    const first = await syncRuns({ runsRoot: root, runs: [], uri: server.uri, env: {}, client: FAST }, root);
    assert.equal(first.length, 1);
    assert.equal(first[0].outcome, 'uploaded');
    assert.equal(first[0].events, run.events.length);
    const id = first[0].mlflowRunId!;
    await assertMirrors(client, run, id, { truncatedParams: ['long_text'] });
    const second = await syncRuns({ runsRoot: root, runs: ['run-offline'], uri: server.uri, env: {}, client: FAST }, root);
    assert.equal(second[0].outcome, 'up-to-date');
    assert.equal(second[0].events, 0);
    assert.equal(second[0].requests, 0);
    assert.equal(second[0].mlflowRunId, id);
    await assertMirrors(client, run, id, { truncatedParams: ['long_text'] });
  });

  it('a crash between runs/create and the state write does not create the run twice', async () => {
    const root = tempStore();
    const run = writeRun(root, 'run-crash-create', { steps: 3 });
    const first = await syncRuns({ runsRoot: root, runs: [], uri: server.uri, env: {}, client: FAST }, root);
    rmSync(join(run.dir, 'mlflow.json')); // as if the process died right after runs/create
    const again = await syncRuns({ runsRoot: root, runs: [], uri: server.uri, env: {}, client: FAST }, root);
    assert.equal(again[0].mlflowRunId, first[0].mlflowRunId, 'found by its rass.run_id tag');
    await assertMirrors(client, run, first[0].mlflowRunId!, { truncatedParams: ['long_text'] });
  });

  it('a param logged again with another value is reported, the rest still arrives', async () => {
    const root = tempStore();
    const run = new TestRun(root, 'exp-rt', 'run-conflict');
    run.append({ type: 'params', params: { lr: '0.1', wd: '0' } });
    run.append({ type: 'metrics', step: 0, values: { loss: 1 } });
    run.append({ type: 'params', params: { lr: '0.2' } });
    run.append({ type: 'metrics', step: 1, values: { loss: 0.5 } });
    run.append({ type: 'status', status: 'FINISHED' });
    const warnings: string[] = [];
    const res = await syncRuns({ runsRoot: root, runs: [], uri: server.uri, env: {}, client: FAST, warn: (m) => warnings.push(m) }, root);
    assert.equal(res[0].conflicts.length, 1);
    assert.match(res[0].conflicts[0], /param "lr" is immutable: it is "0\.1" but the run tried to log "0\.2"/);
    const remote = await client.getRun(res[0].mlflowRunId!);
    assert.equal(remote.data.params?.find((p) => p.key === 'lr')?.value, '0.1');
    assert.deepEqual((await client.getMetricHistory(res[0].mlflowRunId!, 'loss')).map((m) => m.value), [1, 0.5]);
    assert.equal(remote.info.status, 'FINISHED');

    // Server-side conflict: the MLflow run already has another value for a param.
    const run2 = new TestRun(root, 'exp-rt', 'run-conflict-2');
    run2.append({ type: 'params', params: { lr: '0.3', momentum: '0.9' } });
    run2.append({ type: 'status', status: 'FINISHED' });
    const st = await ensureRemoteRun(client, run2.dir);
    await client.logBatch(st.runId, { params: [{ key: 'lr', value: '9' }] });
    const res2 = await syncRuns({ runsRoot: root, runs: ['run-conflict-2'], uri: server.uri, env: {}, client: FAST, warn: (m) => warnings.push(m) }, root);
    const id2 = res2[0].mlflowRunId!;
    const p2 = new Map((await client.getRun(id2)).data.params?.map((p) => [p.key, p.value]));
    assert.equal(id2, st.runId);
    assert.equal(p2.get('momentum'), '0.9', 'the other params of the batch still arrive');
    assert.equal(p2.get('lr'), '9');
    assert.equal(res2[0].conflicts.length, 1);
    assert.match(res2[0].conflicts[0], /param "lr" is immutable: it is "9" but the run tried to log "0\.3" \(the server already had it\)/);
  });

  it('non-finite metric values and checkpoints (when asked) arrive too', async () => {
    const root = tempStore();
    const run = new TestRun(root, 'exp-rt', 'run-nan');
    // JSON has no NaN: a journal writer's JSON.stringify turns it into null.
    appendFileSync(join(run.dir, 'journal.jsonl'), JSON.stringify({ seq: 1, t: run.clock, type: 'metrics', step: 0, values: { loss: NaN, ok: 1 } }) + '\n');
    (run as unknown as { seq: number }).seq = 2;
    const ckpt = detBytes(300_000, 'ckpt');
    mkdirSync(join(run.dir, 'checkpoints'), { recursive: true });
    writeFileSync(join(run.dir, 'checkpoints', 'step-10.safetensors'), ckpt);
    run.append({ type: 'status', status: 'FINISHED' });
    const res = await syncRuns({ runsRoot: root, runs: [], uri: server.uri, env: {}, client: FAST, logCheckpoints: true }, root);
    const id = res[0].mlflowRunId!;
    const hist = await client.getMetricHistory(id, 'loss');
    assert.equal(hist.length, 1);
    assert.ok(Number.isNaN(Number(hist[0].value)), `NaN stored as NaN, got ${String(hist[0].value)}`);
    const remote = await client.getRun(id);
    const got = await client.downloadArtifact(remote.info.artifact_uri, 'checkpoints/step-10.safetensors');
    assert.ok(got.equals(ckpt), 'checkpoint byte for byte');
    const listed = await client.listArtifacts(id, 'checkpoints');
    assert.deepEqual(listed.map((f) => f.path), ['checkpoints/step-10.safetensors']);
  });

  it('two processes creating the same experiment get the same id', async () => {
    const clients = Array.from({ length: 6 }, () => new MlflowClient({ uri: server.uri, ...FAST }));
    const ids = await Promise.all(clients.map((c) => c.getOrCreateExperiment('race-exp')));
    assert.equal(new Set(ids).size, 1);
  });

  it('the runner factory applies only when a tracking URI is configured', async () => {
    const root = tempStore();
    const run = new TestRun(root, 'exp-rt', 'run-factory');
    const none = await mlflowTrackerFactory({ dir: run.dir, runId: run.runId, experiment: 'exp-rt', config: {}, env: {} });
    assert.equal(none, undefined);
    const t = await mlflowTrackerFactory({ dir: run.dir, runId: run.runId, experiment: 'exp-rt', config: { tracking: { mlflow: { experiment_name: 'factory-exp' } } }, env: { MLFLOW_TRACKING_URI: server.uri } });
    assert.ok(t);
    run.append({ type: 'status', status: 'FINISHED' });
    t.onAppend();
    await t.close({ timeoutMs: 30_000 });
    const st = readState(run.dir).targets[server.uri];
    const exp = await client.getExperimentByName('factory-exp');
    assert.equal(st.experimentId, exp?.experiment_id);
    await assert.rejects(mlflowTrackerFactory({ dir: run.dir, runId: run.runId, experiment: 'x', config: { tracking: { mlflow: { uri: 'file:./mlruns' } } }, env: {} }), /not an http\(s\) URL/);
  });
});
