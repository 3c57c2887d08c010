/**
 * `rass run` with MLFLOW_TRACKING_URI set, as a user runs it (child process of the CLI): the
 * runner's tracker (worker thread) mirrors the whole journal into a real MLflow server, the
 * token never reaches a run file, and `rass runs sync` afterwards finds nothing new.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { readJournal } from '../../../framework/tracking/journal.js';
import { MlflowClient } from '../../../framework/tracking/mlflow/client.js';
import { LOCAL_RUN_ID_TAG } from '../../../framework/tracking/mlflow/remote-run.js';
import { readState } from '../../../framework/tracking/mlflow/state.js';
import { packageRoot } from '../../../framework/paths.js';
import { type MlflowServer, mlflowSkipped, startMlflowServer } from '../../../scripts/mlflow/server.js';
import { removeTempStores, tempStore } from './helpers.js';
import { startGroup } from '../../helpers/process-group.js';
import { assertMirrors } from './mirror-assert.js';

const skip = mlflowSkipped();
const ROOT = packageRoot();
// dist/tests/integration/tracking -> dist/bin/rass.js when compiled; bin/rass.ts through tsx from source.
const compiled = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'rass.js');
const cliArgs = existsSync(compiled) ? [compiled] : ['--import', 'tsx', join(ROOT, 'bin', 'rass.ts')];

function rass(args: string[], env: Record<string, string>) {
  return spawnSync(process.execPath, [...cliArgs, ...args], { cwd: ROOT, env: { ...process.env, CI: 'true', ...env }, encoding: 'utf8', timeout: 180_000 });
}

function allFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? allFiles(join(dir, f)) : [join(dir, f)]));
}

describe('rass run with MLflow tracking', { skip }, () => {
  let server: MlflowServer;
  before(async () => {
    server = await startMlflowServer();
  });
  after(async () => {
    await server?.stop();
    removeTempStores();
  });

  it('mirrors the quickstart run; the token stays out of run files; sync finds nothing new', async () => {
    const runs = tempStore('rass-run-mlflow-');
    const TOKEN = 'tok-E2E-5ecr3t-91ab';
    const r = rass(['run', 'configs/toy/classifier.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=60', '--set', 'experiment.checkpoint_every=30', '--set', 'tracking.mlflow.experiment_name=e2e-quickstart'], {
      MLFLOW_TRACKING_URI: server.uri,
      MLFLOW_TRACKING_TOKEN: TOKEN,
    });
    assert.equal(r.status, 0, r.stderr);
    const expDir = join(runs, 'toy-classifier');
    const [id] = readdirSync(expDir);
    const dir = join(expDir, id);
    const { events, torn, errors } = readJournal(join(dir, 'journal.jsonl'));
    assert.equal(torn, undefined);
    assert.deepEqual(errors, []);
    assert.ok(events.filter((e) => e.type === 'metrics').length >= 60);
    const state = readState(dir).targets[server.uri];
    assert.ok(state, 'the runner tracker mapped the run');
    assert.equal(state.ackedSeq, events[events.length - 1].seq, 'every event acknowledged by the end of the run');
    const client = new MlflowClient({ uri: server.uri });
    await assertMirrors(client, { dir, runId: id, events }, state.runId);
    const remote = await client.getRun(state.runId);
    assert.equal(remote.info.status, 'FINISHED');
    assert.equal(remote.info.experiment_id, (await client.getExperimentByName('e2e-quickstart'))?.experiment_id);
    assert.equal(remote.data.tags?.find((t) => t.key === 'rass.run_id')?.value, id);
    for (const f of allFiles(runs)) assert.ok(!readFileSync(f).toString('latin1').includes(TOKEN), `${f} contains the token`);
    assert.ok(!r.stderr.includes(TOKEN) && !r.stdout.includes(TOKEN), 'the token is not in the CLI output');

    const sync = rass(['runs', 'sync', '--to', server.uri, '--runs-dir', runs], {});
    assert.equal(sync.status, 0, sync.stderr);
    assert.match(sync.stdout, new RegExp(`${id}\\s+${state.runId}\\s+up-to-date\\s+0\\s+0`));
  });

  it('a sweep SIGKILLed part-way and re-run: exactly one MLflow parent and one child per trial, all FINISHED', async () => {
    const runs = tempStore('rass-sweep-mlflow-');
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const args = ['sweep', 'configs/toy/lr-hidden-sweep.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=300', '--set', 'tracking.mlflow.experiment_name=e2e-sweep', '--max-parallel', '2'];
    const job = startGroup([...cliArgs, ...args], { cwd: ROOT, env });
    assert.ok(await job.waitFor(() => /\[3\/8\] \S+ FINISHED/.test(job.out()), 120_000), 'three trials finished before the kill');
    job.signal('SIGKILL'); // the sweep and its workers, mid-trial, like a lost machine
    await job.exited;
    await job.groupGone();
    const again = rass(args, env);
    assert.equal(again.status, 0, again.stderr + again.stdout);
    assert.match(again.stdout, /8 trials \([3-7] finished earlier, [1-5] to run/);

    const client = new MlflowClient({ uri: server.uri });
    const expId = (await client.getExperimentByName('e2e-sweep'))!.experiment_id;
    const all = await client.searchAllRuns([expId], '');
    const parentLocalId = readdirSync(join(runs, 'toy-lr-hidden'))[0];
    const parents = all.filter((r) => r.data.tags?.find((t) => t.key === LOCAL_RUN_ID_TAG)?.value === parentLocalId);
    assert.equal(parents.length, 1, 'one MLflow run for the sweep');
    assert.equal(parents[0].info.status, 'FINISHED');
    const kids = all.filter((r) => r.data.tags?.find((t) => t.key === 'mlflow.parentRunId')?.value === parents[0].info.run_id);
    const kidLocalIds = kids.map((k) => k.data.tags?.find((t) => t.key === LOCAL_RUN_ID_TAG)?.value).sort();
    assert.deepEqual(kidLocalIds, readdirSync(join(runs, 'toy-classifier')).sort(), 'one child per trial, none twice');
    assert.equal(all.length, 9, 'nothing else was created');
    for (const k of kids) assert.equal(k.info.status, 'FINISHED', k.info.run_name);
  });

  it('a sweep recorded offline and re-run with a tracking URI uploads its finished trials (the mirror catches up), once', async () => {
    const runs = tempStore('rass-sweep-offline-');
    const args = ['sweep', 'tests/fixtures/sweep/mixed.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=20', '--max-parallel', '2'];
    const offline = rass(args, { MLFLOW_TRACKING_URI: '' });
    assert.equal(offline.status, 1, offline.stderr); // the 'broken' variant fails, as designed
    const env = { MLFLOW_TRACKING_URI: server.uri, MLFLOW_EXPERIMENT_NAME: 'e2e-sweep-offline' };
    const online = rass(args, env);
    assert.match(online.stdout, /4 trials \(2 finished earlier, 0 to run/);
    const client = new MlflowClient({ uri: server.uri });
    const expId = (await client.getExperimentByName('e2e-sweep-offline'))!.experiment_id;
    const all = await client.searchAllRuns([expId], '');
    assert.equal(all.length, 5, 'the parent and its 4 trials');
    const parent = all.find((r) => !r.data.tags?.some((t) => t.key === 'mlflow.parentRunId'))!;
    const kids = all.filter((r) => r.data.tags?.find((t) => t.key === 'mlflow.parentRunId')?.value === parent.info.run_id);
    assert.deepEqual(kids.map((k) => k.info.status).sort(), ['FAILED', 'FAILED', 'FINISHED', 'FINISHED']);
    for (const k of kids) {
      const localId = k.data.tags!.find((t) => t.key === LOCAL_RUN_ID_TAG)!.value;
      const dir = join(runs, 'toy-classifier', localId);
      await assertMirrors(client, { dir, runId: localId, events: readJournal(join(dir, 'journal.jsonl')).events }, k.info.run_id);
    }
    // the parent's per-trial logs are journaled artifacts: they reach MLflow with the same bytes
    const parentDir = join(runs, 'mixed', readdirSync(join(runs, 'mixed'))[0]);
    const logNames = readdirSync(join(parentDir, 'artifacts', 'logs')).sort();
    assert.equal(logNames.length, 4, 'one log per trial');
    const remoteLogs = (await client.listArtifacts(parent.info.run_id, 'logs')).map((f) => f.path).sort();
    assert.deepEqual(remoteLogs, logNames.map((n) => `logs/${n}`));
    for (const n of logNames) assert.deepEqual(await client.downloadArtifact(parent.info.artifact_uri, `logs/${n}`), readFileSync(join(parentDir, 'artifacts', 'logs', n)), `logs/${n}`);
    const third = rass(args, env);
    assert.doesNotMatch(third.stderr, /not fully mirrored/);
    assert.equal((await client.searchAllRuns([expId], '')).length, 5, 'nothing uploaded twice');
  });
});
