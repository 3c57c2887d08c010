/**
 * The tracker contract. A `tracker/*` plugin builds a Tracker: for each run it may start a
 * RunTracker that mirrors the run's journal (the local write-ahead log) somewhere else, e.g.
 * an MLflow server or a CSV file. The journal is always written first; a run tracker only
 * ever reads it, so an unreachable destination delays logging but never loses it.
 */

/** One run being mirrored. */
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

/** What `tracker/*` plugins build. */
export interface Tracker {
  /**
   * Start mirroring one run; undefined when this tracker does not apply to it (e.g. MLflow
   * without a tracking URI). A bad configuration is a UserError.
   */
  start(run: TrackerRunInfo): Promise<RunTracker | undefined>;
  /**
   * Finish mirroring runs whose live mirror was cut short (a trial killed while its tracker
   * was still uploading). Sweeps call it for their trials; trackers that mirror synchronously
   * need not implement it.
   */
  catchUp?(dirs: readonly string[], ctx: { runsRoot: string; env: Record<string, string | undefined>; warn: (message: string) => void }): Promise<void>;
}
