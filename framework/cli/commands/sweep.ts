/**
 * `rass sweep FILE [--set k=v]... [--dry-run] [--max-parallel N] [--retry-failed]`:
 * expand a config's `sweep:` block into trials, print the trial table, validate every trial,
 * then run them (one parent run, one child run per trial).
 */
import type { CommandSpec } from '../../plugins/command-spec.js';
import { loadConfig } from '../../config/index.js';
import { UserError } from '../../errors.js';
import { executeSweep, planSweep, trialTable } from '../../sweep/run-sweep.js';
import { splitStageSets } from '../../runner/pipeline.js';

interface SweepCliOptions {
  set: string[];
  dryRun?: boolean;
  maxParallel?: string;
  retryFailed?: boolean;
}

export const sweepCommand: CommandSpec = {
  name: 'sweep',
  summary: 'run an ablation sweep (grid, linked axes, variants, random, repeats): one parent run, a child run per trial',
  configure(cmd, ctx) {
    cmd
      .argument('<config>', 'config with a `sweep:` block')
      .option('-s, --set <key=value>', 'override a base config value (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
      .option('--dry-run', 'print the trial table (and validate every trial) without running')
      .option('--max-parallel <n>', 'trials running at once (default: number of cores)')
      .option('--retry-failed', 'also re-run trials that FAILED or were KILLED in an earlier invocation')
      .action(async (file: string, opts: SweepCliOptions) => {
        const maxParallel = opts.maxParallel === undefined ? undefined : Number(opts.maxParallel);
        if (maxParallel !== undefined && !(Number.isInteger(maxParallel) && maxParallel >= 1)) throw new UserError(`--max-parallel: expected a positive integer, got "${opts.maxParallel}"`);
        // `stages.<id>.<key>=v` reaches one stage of a staged config (each trial's pipeline applies it)
        const split = splitStageSets(opts.set);
        const cfg = await loadConfig(file, { sets: split.pipeline, cwd: ctx.cwd });
        // not a dry run: the executor starts its workers while the trials are validated
        const warm = opts.dryRun ? undefined : { ...(ctx.cli ? { cli: ctx.cli } : {}), env: process.env, ...(maxParallel ? { maxParallel } : {}), stray: (t: string) => ctx.stderr.write(t) };
        const plan = await planSweep(cfg, ctx.registry, ctx.cwd, warm, { stageSets: split.stages, env: process.env });
        ctx.stdout.write(`sweep ${plan.name}: ${plan.records.length} trials (all configs valid); parent run ${plan.parentRunId}\n${trialTable(plan)}\n`);
        if (opts.dryRun) return;
        const controller = new AbortController();
        // the abort reason names the signal: trials are stopped as that signal stops `rass run`
        const onInt = () => controller.abort('SIGINT');
        const onTerm = () => controller.abort('SIGTERM');
        process.once('SIGINT', onInt);
        process.once('SIGTERM', onTerm);
        try {
          const outcome = await executeSweep(plan, { maxParallel, retryFailed: opts.retryFailed, sets: opts.set, stdout: ctx.stdout, stderr: ctx.stderr, cwd: ctx.cwd, env: process.env, signal: controller.signal, ...(ctx.cli ? { cli: ctx.cli } : {}) });
          process.exitCode = outcome.exitCode;
        } finally {
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
        }
      });
  },
};
