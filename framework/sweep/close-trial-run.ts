/**
 * The executor writing a trial run's final status, with the run's own trackers attached:
 * - the trial's process died (native crash, out of memory, SIGKILL, a plugin calling
 *   process.exit) and nothing in it could. Without this the run stays RUNNING forever,
 *   locally and in MLflow, and a plain re-run would resume a trial that crashes the same way;
 * - the executor stopped it for running past its time limit: its runner journaled KILLED,
 *   and FAILED (with the reason) keeps a plain re-run from resuming it into the same timeout.
 * Closed FAILED, the trial waits for --retry-failed like any failed trial.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RunStatus } from '../tracking/events.js';
import { LocalRun } from '../tracking/local-run.js';
import { readRunConfig } from '../tracking/run-store.js';
import type { PluginRegistry } from '../plugins/registry.js';
import { startTrackers, trackersOrWarn } from '../tracking/trackers.js';

export async function closeTrialRun(
  dir: string,
  status: Extract<RunStatus, 'FAILED' | 'KILLED'>,
  message: string,
  env: Record<string, string | undefined>,
  warn: (m: string) => void,
  registry: PluginRegistry,
): Promise<void> {
  if (!existsSync(join(dir, 'journal.jsonl'))) return; // it died before its run existed
  // a dead process's lock: taking it over is expected here, not worth a warning
  const run = LocalRun.reopen(dir, { warn: (m) => (/taking over a stale lock/.test(m) ? undefined : warn(m)) });
  const runEv = run.reopened?.events.find((e) => e.type === 'run');
  const config = readRunConfig(dir);
  if (!config) warn(`${join(dir, 'config.yaml')}: missing or unreadable (closing the run without its trackers)`);
  if (config) run.attachTrackers(await startTrackers(await trackersOrWarn(config, registry, warn), { dir, runId: run.runId, experiment: runEv?.type === 'run' ? runEv.experiment : '', config, env }, warn));
  await run.finalize(status, message);
}
