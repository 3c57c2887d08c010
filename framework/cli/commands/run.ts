/**
 * `rass run CONFIG [--set k=v ...] [--name NAME]` and `rass run --resume RUN`: run an
 * experiment config through the runner, recording it in the local run store.
 */
import type { CommandSpec } from '../command.js';
import { runExperiment } from '../../runner/runner.js';

interface RunCliOptions {
  set: string[];
  name?: string;
  resume?: string;
  runsDir?: string;
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
      .option('--runs-dir <dir>', 'run store to find --resume in', 'runs')
      .action(async (config: string | undefined, opts: RunCliOptions) => {
        const outcome = await runExperiment({
          registry: ctx.registry,
          configFile: config,
          sets: opts.set,
          name: opts.name,
          resume: opts.resume,
          runsDir: opts.runsDir,
          cwd: ctx.cwd,
          env: process.env,
          stdout: ctx.stdout,
          stderr: ctx.stderr,
          handleSignals: true,
        });
        process.exitCode = outcome.exitCode;
        // Killed: the run is closed and journaled. If the experiment ignored the abort and
        // keeps the event loop busy, do not let it outlive the signal for long.
        if (outcome.status === 'KILLED') setTimeout(() => process.exit(outcome.exitCode), 2000).unref();
      });
  },
};
