/**
 * What the sweep's local executor and its trial workers say to each other over the worker's
 * IPC channel. A worker is a long-lived `rass _trial-worker` process that runs trials one at
 * a time, so the CLI, the plugin registry and tfjs are loaded once per worker, not per trial.
 */

import type { TrialRequest } from '../contracts/executor.js';

export type { TrialRequest } from '../contracts/executor.js';

export type ToWorker =
  | { type: 'trial'; trialId: string; logFile: string; request: TrialRequest }
  /**
   * stop the running trial as this signal would stop `rass run` (journaled KILLED, checkpoint
   * kept). The executor sends it, not the terminal: workers ignore a terminal's SIGINT, which
   * reaches the whole process group, so a trial is stopped exactly once and in order.
   */
  | { type: 'stop'; signal: 'SIGINT' | 'SIGTERM' }
  /** finish nothing new; exit once idle */
  | { type: 'exit' };

export type FromWorker =
  | { type: 'ready'; pid: number }
  | {
      type: 'done';
      trialId: string;
      /** what `rass run` would have exited with */
      exitCode: number;
      /** set when the trial failed before its run existed (e.g. a bad config) */
      error?: string;
      /** tfjs tensors alive after the trial minus before it: > 0 means the trial leaked */
      leakedTensors: number;
    };

/** The `rass run` command line of a request: shown in trial logs, and what Slurm tasks run. */
export function runArgv(req: TrialRequest): string[] {
  if (req.resume !== undefined) return ['run', '--resume', req.resume, ...(req.runsDir ? ['--runs-dir', req.runsDir] : [])];
  return [
    'run',
    req.configFile ?? '',
    ...req.sets.flatMap((s) => ['--set', s]),
    ...(req.runId ? ['--run-id', req.runId] : []),
    ...(req.parentRunId ? ['--parent', req.parentRunId] : []),
    ...(req.name ? ['--name', req.name] : []),
    ...Object.entries(req.tags).flatMap(([k, v]) => ['--tag', `${k}=${v}`]),
    ...(req.retryFailed ? ['--retry-failed'] : []),
  ];
}
