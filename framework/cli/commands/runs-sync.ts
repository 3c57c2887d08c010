/**
 * `rass runs sync [RUN...] --to URI`: upload runs recorded offline to an MLflow server.
 * `addRunsSyncCommand` hangs it under `rass runs`; `syncCommand` is the same as a top-level
 * command for builds without `rass runs`.
 */
import type { Command } from 'commander';
import type { CliContext, CommandSpec } from '../../plugins/command-spec.js';
import { UserError } from '../../errors.js';
import { formatTable } from '../../output/table.js';
import { syncRuns } from '../../tracking/sync.js';
import { stripCredentials } from '../../tracking/mlflow/redact.js';

interface SyncCliOptions {
  to?: string;
  runsDir: string;
  experiment?: string;
  checkpoints?: boolean;
  json?: boolean;
}

function configureSync(cmd: Command, ctx: CliContext): void {
  cmd
    .argument('[runs...]', 'run ids or run directories (default: every run in the store)')
    .option('--to <uri>', 'MLflow tracking URI (default: $MLFLOW_TRACKING_URI)')
    .option('--runs-dir <dir>', 'local run store', 'runs')
    .option('--experiment <name>', 'MLflow experiment (default: each run\'s experiment name)')
    .option('--checkpoints', 'also upload checkpoints/ of finished runs')
    .option('--json', 'print JSON instead of a table')
    .action(async (runs: string[], opts: SyncCliOptions) => {
      const uri = opts.to ?? process.env.MLFLOW_TRACKING_URI;
      if (!uri) throw new UserError('rass runs sync: no MLflow server: pass --to URI or set MLFLOW_TRACKING_URI');
      if (!/^https?:\/\//iu.test(uri)) throw new UserError(`rass runs sync --to: "${stripCredentials(uri)}" is not an http(s) URL of an MLflow tracking server`);
      const results = await syncRuns(
        { runsRoot: opts.runsDir, runs, uri, env: process.env, experimentName: opts.experiment, logCheckpoints: opts.checkpoints, warn: (m) => ctx.stderr.write(`warning: ${m}\n`) },
        ctx.cwd,
      );
      if (opts.json) {
        ctx.stdout.write(JSON.stringify(results, null, 2) + '\n');
      } else if (results.length === 0) {
        ctx.stdout.write(`no runs found in ${opts.runsDir}\n`);
      } else {
        ctx.stdout.write(formatTable(['run', 'mlflow run', 'result', 'events', 'requests', 'note'], results.map((r) => [r.runId, r.mlflowRunId ?? '', r.outcome, r.events, r.requests, r.message ?? ''])) + '\n');
      }
      for (const r of results) for (const c of r.conflicts) ctx.stderr.write(`conflict: run ${r.runId}: ${c}\n`);
      if (results.some((r) => r.outcome === 'failed' || r.conflicts.length > 0)) process.exitCode = 1;
    });
}

/** Add `sync` under the `runs` command. */
export function addRunsSyncCommand(runs: Command, ctx: CliContext): void {
  configureSync(runs.command('sync').description('upload runs recorded offline to an MLflow server (resumes; a second sync uploads nothing new)').exitOverride(), ctx);
}

/** `rass sync`: the same as a top-level command. */
export const syncCommand: CommandSpec = {
  name: 'sync',
  summary: 'upload runs recorded offline to an MLflow server (same as `rass runs sync`)',
  configure: configureSync,
};
