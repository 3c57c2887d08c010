import type { CliCommand } from '../plugins/command-spec.js';
export type { CliCommand } from '../plugins/command-spec.js';
/**
 * The executor contract. An `executor/*` plugin builds an Executor: it runs a sweep's trials
 * (each one `rass run ...` command line) somewhere (worker processes on this machine, a Slurm
 * job array, ...) and reports how each ended. The sweep does the bookkeeping: it reads each
 * trial's outcome from the trial's own run, and uses what the executor reports only when the
 * run could not record it (the process died, the job was lost).
 */

/** One trial, as the options of `rass run` (a fresh run, or `--resume` of its run directory). */
export interface TrialRequest {
  configFile?: string;
  sets: string[];
  resume?: string;
  runsDir?: string;
  runId?: string;
  parentRunId?: string;
  name?: string;
  tags: Record<string, string>;
  /** a pipeline trial re-run with `rass sweep --retry-failed`: its FAILED stage resumes (`rass run --retry-failed`) */
  retryFailed?: boolean;
}


export interface ExecutorTrial {
  id: string;
  request: TrialRequest;
  /** the `rass` arguments of the trial (after the CLI's own command and args) */
  argv: string[];
  /** where the trial's output goes (the sweep's parent run artifacts/logs/) */
  logFile: string;
  /** the trial's run directory */
  runDir: string;
}

/** How a trial ended, as far as the executor can tell. */
export interface TrialEnd {
  exitCode: number | null;
  /** the signal that ended the trial's process when it died */
  signal?: string | null;
  /** the trial's process died without reporting a result */
  crashed: boolean;
  /** it ran out of memory (the message names `memoryLimitMb` when there was one) */
  outOfMemory?: boolean;
  memoryLimitMb?: number;
  /** it ran past the executor's time limit (seconds) and was stopped */
  timedOut?: boolean;
  timeLimitS?: number;
  /** what went wrong, in the executor's words */
  error?: string;
  /**
   * The executor lost track of the trial (e.g. a Slurm task gone from the queue): recorded as
   * the trial's message when its run has no final status; the run is left as it is.
   */
  lost?: string;
  /** where the trial's output went when not ExecutorTrial.logFile (e.g. Slurm's own log file) */
  logFile?: string;
  /** tfjs tensors the trial left allocated (a worker that reuses processes reports them) */
  leakedTensors?: number;
}

export interface ExecutorRunContext {
  /** the CLI to start for each trial (or each worker) */
  cli: CliCommand;
  cwd: string;
  env: Record<string, string | undefined>;
  /** at most this many trials at once */
  maxParallel: number;
  sweepName: string;
  /** the sweep's parent run directory (an executor may keep its files there, e.g. a job script) */
  parentDir: string;
  /** artifacts/logs/ of the parent run */
  logDir: string;
  /** a progress line for the user */
  out(line: string): void;
  /** output that belongs to no trial (a worker's start-up problems) */
  stray(text: string): void;
  /** a trial started (the sweep marks it RUNNING) */
  started(trial: ExecutorTrial): void;
  /** a trial ended; the executor awaits it before counting the slot free */
  ended(trial: ExecutorTrial, end: TrialEnd): Promise<void>;
  /** set once the sweep is stopping (SIGINT/SIGTERM): start nothing new */
  stopping(): 'SIGINT' | 'SIGTERM' | undefined;
}

/** What `executor/*` plugins build. */
export interface Executor {
  /** Run the trials in order (at most ctx.maxParallel at once); resolves when each has ended or was never started because the sweep is stopping. */
  run(trials: readonly ExecutorTrial[], ctx: ExecutorRunContext): Promise<void>;
  /** Stop running trials as `signal` would (checkpoint kept); called once when the sweep stops. */
  stop(signal: 'SIGINT' | 'SIGTERM'): void;
  /** trials running now */
  readonly running: number;
  /**
   * Optional: get ready to run (start worker processes, ...) while the sweep still plans, so
   * start-up overlaps planning. `run` follows with the same context, or `dispose` when the
   * sweep will not run (a dry run, an invalid trial config).
   */
  warmUp?(ctx: Pick<ExecutorRunContext, 'cli' | 'cwd' | 'env' | 'maxParallel' | 'stray'>): void;
  /** Optional: release what warmUp started, when `run` will not be called. */
  dispose?(): Promise<void>;
}
