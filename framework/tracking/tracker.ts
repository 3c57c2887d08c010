/**
 * Remote trackers mirror a run's journal (the local write-ahead log) somewhere else, e.g.
 * an MLflow server. The journal is always written first; a tracker only ever reads it, so
 * an unreachable server delays logging but never loses it.
 */
export interface RunTracker {
  readonly name: string;
  /** The journal appended events: ship them soon (must be cheap and never throw). */
  onAppend(): void;
  /** Try to ship everything journaled so far; resolves when acknowledged or when it gives up for now. Never throws for network errors. */
  flush(opts?: { timeoutMs?: number }): Promise<void>;
  /** Final flush and release (called after the final status event was journaled). */
  close(opts?: { timeoutMs?: number }): Promise<void>;
}

export interface TrackerRunInfo {
  /** The run directory (holds journal.jsonl, artifacts/, ...). */
  dir: string;
  runId: string;
  experiment: string;
  /** The resolved run config (plain object). */
  config: Record<string, unknown>;
  env: Record<string, string | undefined>;
}

/** Returns a tracker when its configuration (config keys / environment) asks for one, else undefined. */
export type TrackerFactory = (run: TrackerRunInfo) => Promise<RunTracker | undefined>;
