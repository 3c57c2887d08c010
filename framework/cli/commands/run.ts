/**
 * `rass run CONFIG [--set k=v ...] [--name NAME]` and `rass run --resume RUN`: run an
 * experiment config through the runner, recording it in the local run store.
 */
import type { CommandSpec } from '../../plugins/command-spec.js';
import { runExperiment } from '../../runner/runner.js';
import { isPipelineConfig, runPipeline } from '../../runner/pipeline.js';
import { UserError } from '../../errors.js';

interface RunCliOptions {
  set: string[];
  name?: string;
  resume?: string;
  runsDir?: string;
  runId?: string;
  parent?: string;
  tag: string[];
  retryFailed?: boolean;
  force?: boolean;
  threads?: string;
}

export const runCommand: CommandSpec = {
  name: 'run',
  summary: 'run an experiment config (records runs/<experiment>/<run-id>/); --resume continues a killed run',
  configure(cmd, ctx) {
    cmd
      .argument('[config]', 'experiment config (YAML)')
      .option('-s, --set <key=value>', 'override a config value (repeatable), e.g. --set experiment.steps=100', (v: string, prev: string[]) => [...prev, v], [] as string[])
      .option('--name <name>', 'run name (default: config `name`, else the experiment plugin name)')
      .option('--resume <run>', 'continue a run (id, id prefix or directory) from its latest checkpoint')
      .option('--force', 'with --resume: reopen even a FINISHED run')
      .option('--runs-dir <dir>', 'run store to find --resume in', 'runs')
      .option('--run-id <id>', 'use this run id instead of a new one (sweeps use stable trial run ids)')
      .option('--parent <run-id>', 'record this run as a child of that run (a sweep)')
      .option('--tag <key=value>', 'add a run tag (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
      .option('--retry-failed', 'pipelines: resume stages that failed earlier instead of stopping at them')
      .option('--threads <n>', 'native TensorFlow intra-/inter-op threads (config `threads`; default: the cores this process may use)')
      .action(async (config: string | undefined, opts: RunCliOptions) => {
        if (opts.threads !== undefined && !/^[1-9][0-9]*$/.test(opts.threads)) throw new UserError(`--threads "${opts.threads}": expected a positive integer`);
        const tags: Record<string, string> = {};
        for (const t of opts.tag) {
          const eq = t.indexOf('=');
          if (eq <= 0) throw new UserError(`--tag "${t}": expected key=value`);
          tags[t.slice(0, eq)] = t.slice(eq + 1);
        }
        // a config with `stages:` is a pipeline: one child run per stage under a parent run
        if (config && !opts.resume && (await isPipelineConfig(config, { env: process.env, cwd: ctx.cwd, sets: opts.set }))) {
          const outcome = await runPipeline({ registry: ctx.registry, configFile: config, sets: opts.threads === undefined ? opts.set : [...opts.set, `threads=${opts.threads}`], name: opts.name, runsDir: opts.runsDir, tags, cwd: ctx.cwd, env: process.env, stdout: ctx.stdout, stderr: ctx.stderr, handleSignals: true, retryFailed: opts.retryFailed, runId: opts.runId, parentRunId: opts.parent });
          process.exitCode = outcome.exitCode;
          if (outcome.status === 'KILLED') setTimeout(() => process.exit(outcome.exitCode), 2000).unref();
          return;
        }
        const outcome = await runExperiment({
          registry: ctx.registry,
          configFile: config,
          sets: opts.threads === undefined ? opts.set : [...opts.set, `threads=${opts.threads}`],
          name: opts.name,
          resume: opts.resume,
          runsDir: opts.runsDir,
          force: opts.force,
          runId: opts.runId,
          parentRunId: opts.parent,
          tags,
          cwd: ctx.cwd,
          env: process.env,
          stdout: ctx.stdout,
          stderr: ctx.stderr,
          handleSignals: true,
        });
        process.exitCode = outcome.exitCode;
        // Killed: the run is closed and journaled. If the experiment ignored the abort and
        // keeps the event loop busy, do not let it outlive the signal for long.
        // Failed on a stray error (a timer / handler outside the experiment's promise): the same,
        // since whatever threw may still hold the event loop.
        if (outcome.status === 'KILLED' || outcome.stray) setTimeout(() => process.exit(outcome.exitCode), 2000).unref();
      });
  },
};
