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
import { readState } from '../../../framework/tracking/mlflow/state.js';
import { packageRoot } from '../../../framework/paths.js';
import { type MlflowServer, mlflowSkipped, startMlflowServer } from '../../../scripts/mlflow/server.js';
import { removeTempStores, tempStore } from './helpers.js';
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
    const r = rass(['run', 'configs/quickstart.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=60', '--set', 'experiment.checkpoint_every=30', '--set', 'tracking.mlflow.experiment_name=e2e-quickstart'], {
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
});
