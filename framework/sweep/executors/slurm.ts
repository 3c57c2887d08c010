/**
 * `executor/slurm`: the sweep's trials as one sbatch job array (slurm.ts), followed with
 * squeue until no task is left. Each task runs the sweep CLI's `rass run ...` command line.
 */
import { join } from 'node:path';
import { definePlugin } from '../../plugins/define-plugin.js';
import type { Executor, ExecutorRunContext, ExecutorTrial } from '../../contracts/executor.js';
import { accountedStates, activeTasks, cancel, slurmExecutorProperties, submitArray, type SlurmOptions } from '../slurm.js';

class SlurmExecutor implements Executor {
  private jobId: string | undefined;
  private active = 0;

  constructor(private readonly options: SlurmOptions) {}

  get running(): number {
    return this.active;
  }

  stop(): void {
    if (this.jobId) cancel(this.jobId);
  }

  async run(trials: readonly ExecutorTrial[], ctx: ExecutorRunContext): Promise<void> {
    if (trials.length === 0) return;
    const manifest = trials.map((t) => ({ id: t.id, command: ctx.cli.command, args: [...ctx.cli.args, ...t.argv] }));
    const { jobId, script } = submitArray(join(ctx.parentDir, 'slurm'), this.options, ctx.sweepName, manifest, ctx.maxParallel, ctx.logDir);
    this.jobId = jobId;
    ctx.out(`sweep ${ctx.sweepName}: submitted Slurm job array ${jobId} (${trials.length} tasks, ${script})`);
    // a stop that came while sbatch ran
    if (ctx.stopping()) cancel(jobId);
    for (const t of trials) ctx.started(t);
    const reported = new Set<string>();
    const pollMs = (this.options.poll_s ?? 2) * 1000;
    while (true) {
      // squeue -r lists every array task still pending or running as <job>_<index>
      const active = new Set(activeTasks(jobId).map((a) => a.task));
      this.active = active.size;
      const ended = [...trials.entries()].filter(([i, t]) => !reported.has(t.id) && !active.has(`${jobId}_${i}`));
      const acct = ended.length ? accountedStates(jobId) : new Map<string, string>();
      for (const [i, t] of ended) {
        reported.add(t.id);
        const task = `${jobId}_${i}`;
        const logFile = join(ctx.logDir, `slurm-${task}.log`);
        const state = acct.get(task);
        await ctx.ended(t, { exitCode: null, crashed: false, logFile, lost: `Slurm task ${task} ended without a final run status${state ? ` (sacct: ${state})` : ''}; see ${logFile}` });
      }
      if (active.size === 0) break;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}

export const slurmExecutorPlugin = definePlugin({
  kind: 'executor',
  name: 'slurm',
  description: 'run sweep trials as one Slurm job array (sbatch), followed with squeue/sacct',
  docs: 'Resources per task: `partition`, `gpus`, `cpus`, `mem`, `time`, `account`, and raw `extra` #SBATCH lines. The run store must be on a file system the compute nodes share.',
  schema: { type: 'object', additionalProperties: false, properties: slurmExecutorProperties } as const,
  create: (o): Executor => new SlurmExecutor(o as SlurmOptions),
});
