/**
 * `rass runs sync` on the command line: table output, a second run uploads nothing new,
 * user errors for a missing URI and an unknown run.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import type { CliContext } from '../../../framework/plugins/command-spec.js';
import { addRunsSyncCommand } from '../../../framework/cli/commands/runs-sync.js';
import { PluginRegistry } from '../../../framework/plugins/registry.js';
import { MlflowClient } from '../../../framework/tracking/mlflow/client.js';
import { readState } from '../../../framework/tracking/mlflow/state.js';
import { type MlflowServer, mlflowSkipped, startMlflowServer } from '../../../scripts/mlflow/server.js';
import { TestRun, removeTempStores, tempStore } from './helpers.js';
import { assertMirrors } from './mirror-assert.js';

const skip = mlflowSkipped();

async function runSync(args: string[], cwd: string): Promise<{ out: string; err: string; exitCode: number | undefined; error?: Error }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const ctx: CliContext = { registry: new PluginRegistry(), newRegistry: () => new PluginRegistry(), stdout, stderr, cwd };
  const program = new Command('rass').exitOverride();
  program.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  const runs = program.command('runs').exitOverride();
  addRunsSyncCommand(runs, ctx);
  const prev = process.exitCode;
  process.exitCode = undefined;
  let error: Error | undefined;
  try {
    await program.parseAsync(['runs', 'sync', ...args], { from: 'user' });
  } catch (e) {
    error = e as Error;
  }
  const exitCode = typeof process.exitCode === 'number' ? process.exitCode : undefined;
  process.exitCode = prev;
  return { out, err, exitCode, error };
}

describe('rass runs sync', { skip }, () => {
  let server: MlflowServer;
  before(async () => {
    server = await startMlflowServer();
  });
  after(async () => {
    await server?.stop();
    removeTempStores();
  });

  it('uploads offline runs, parents first, and a second sync uploads nothing new', async () => {
    const root = tempStore();
    const parent = new TestRun(root, 'cli', 'sweep-a');
    parent.append({ type: 'status', status: 'FINISHED' });
    const child = new TestRun(root, 'cli', 'trial-a0', { parentRunId: 'sweep-a' });
    child.append({ type: 'params', params: { lr: '0.5' } });
    for (let s = 0; s < 5; s++) child.append({ type: 'metrics', step: s, values: { loss: 5 - s } });
    child.append({ type: 'status', status: 'FAILED', message: 'diverged' });
    const first = await runSync(['--to', server.uri, '--runs-dir', root], root);
    assert.equal(first.error, undefined, first.err);
    assert.match(first.out, /sweep-a\s+\w{32}\s+uploaded/);
    assert.match(first.out, /trial-a0\s+\w{32}\s+uploaded\s+8/);
    assert.ok(first.out.indexOf('sweep-a') < first.out.indexOf('trial-a0'), 'parent listed first');
    const client = new MlflowClient({ uri: server.uri });
    const childId = readState(child.dir).targets[server.uri].runId;
    await assertMirrors(client, child, childId);
    const remote = await client.getRun(childId);
    assert.equal(remote.data.tags?.find((t) => t.key === 'mlflow.parentRunId')?.value, readState(parent.dir).targets[server.uri].runId);
    assert.equal(remote.data.tags?.find((t) => t.key === 'rass.status_message')?.value, 'diverged');

    const second = await runSync(['trial-a0', '--to', server.uri, '--runs-dir', root], root);
    assert.match(second.out, /trial-a0\s+\w{32}\s+up-to-date\s+0\s+0/);
    assert.equal(second.exitCode, undefined);
  });

  it('reports a missing URI and an unknown run as user errors', async () => {
    const root = tempStore();
    const saved = process.env.MLFLOW_TRACKING_URI;
    delete process.env.MLFLOW_TRACKING_URI;
    try {
      const noUri = await runSync(['--runs-dir', root], root);
      assert.match(noUri.error?.message ?? '', /pass --to URI or set MLFLOW_TRACKING_URI/);
    } finally {
      if (saved !== undefined) process.env.MLFLOW_TRACKING_URI = saved;
    }
    const unknown = await runSync(['nope', '--to', server.uri, '--runs-dir', root], root);
    assert.match(unknown.error?.message ?? '', /run "nope": no run directory with that id/);
  });
});
