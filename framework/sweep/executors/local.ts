/**
 * `executor/local`: the sweep's trials on this machine, at most `maxParallel` at once, in
 * long-lived worker processes (local-pool.ts) that run the sweep's own CLI.
 */
import { availableParallelism } from 'node:os';
import { definePlugin } from '../../plugins/define-plugin.js';
import type { Executor, ExecutorRunContext, ExecutorTrial } from '../../contracts/executor.js';
import { WorkerPool, localExecutorProperties, type LocalExecutorOptions } from '../local-pool.js';

/**
 * The environment of the sweep's workers. Each worker's native TensorFlow (and its host helper
 * threads) would otherwise take every core, so n workers on c cores would run n * c busy
 * threads that wait on each other: each gets RASS_THREADS = floor(c / n) (at least 1) unless
 * the sweep's environment sets RASS_THREADS (a trial's own `threads` wins over both).
 */
export function workerEnv(env: Record<string, string | undefined>, workers: number, cores = availableParallelism()): Record<string, string | undefined> {
  const threads = env.RASS_THREADS ? env.RASS_THREADS : String(Math.max(1, Math.floor(cores / Math.max(1, workers))));
  return { ...env, CI: env.CI ?? 'true', RASS_THREADS: threads };
}

class LocalExecutor implements Executor {
  private pool: WorkerPool | undefined;

  constructor(private readonly options: LocalExecutorOptions) {}

  get running(): number {
    return this.pool?.running ?? 0;
  }

  stop(signal: 'SIGINT' | 'SIGTERM'): void {
    this.pool?.stopRunning(signal);
  }

  warmUp(ctx: Pick<ExecutorRunContext, 'cli' | 'cwd' | 'env' | 'maxParallel' | 'stray'>): void {
    this.pool ??= this.newPool(ctx);
    this.pool.prespawn(ctx.maxParallel);
  }

  async dispose(): Promise<void> {
    await this.pool?.close();
    this.pool = undefined;
  }

  private newPool(ctx: Pick<ExecutorRunContext, 'cli' | 'cwd' | 'env' | 'maxParallel' | 'stray'>): WorkerPool {
    return new WorkerPool({ cli: ctx.cli, cwd: ctx.cwd, env: workerEnv(ctx.env, ctx.maxParallel), options: this.options, stray: ctx.stray });
  }

  async run(trials: readonly ExecutorTrial[], ctx: ExecutorRunContext): Promise<void> {
    if (trials.length === 0) {
      await this.dispose();
      return;
    }
    // workers started by warmUp (while the sweep planned) take the first trials
    const pool = (this.pool ??= this.newPool(ctx));
    const limits = { timeLimitS: this.options.trial_timeout_s, memoryLimitMb: this.options.memory_mb };
    const queue = [...trials];
    // trials start in order; a finished one frees its slot for the next, until the sweep stops
    await new Promise<void>((allDone) => {
      let active = 0;
      const next = () => {
        while (!ctx.stopping() && active < ctx.maxParallel && queue.length) {
          const t = queue.shift()!;
          active++;
          ctx.started(t);
          void pool
            .run({ trialId: t.id, logFile: t.logFile, request: t.request })
            .then((r) => ctx.ended(t, { ...r, ...limits }))
            .catch((e: unknown) => ctx.stray(`trial ${t.id}: ${(e as Error).message}\n`))
            .then(() => {
              active--;
              next();
            });
        }
        if (active === 0) allDone();
      };
      next();
    });
    await pool.close();
  }
}

export const localExecutorPlugin = definePlugin({
  kind: 'executor',
  name: 'local',
  description: "run sweep trials on this machine in reusable worker processes (the default executor)",
  docs: 'Workers are replaced after a failed trial, a trial that leaked tensors, or `max_trials_per_worker` trials. `memory_mb` caps each worker\'s V8 heap; `trial_timeout_s` stops a trial (SIGTERM, checkpoint kept, then SIGKILL after 5 s) and fails it.',
  schema: { type: 'object', additionalProperties: false, properties: localExecutorProperties } as const,
  create: (o): Executor => new LocalExecutor(o as LocalExecutorOptions),
});
