import type { ComponentNode, Logger } from '../plugins/context.js';
import type { PluginKind } from '../plugins/kinds.js';

/** A progress display for long work (a bar on a terminal, periodic plain lines otherwise). */
export interface ProgressHandle {
  /** advance by n (default 1); `info` is shown beside the bar, e.g. "loss 0.31" */
  tick(n?: number, info?: string): void;
  /** set the absolute position */
  update(done: number, info?: string): void;
  /** finish (prints a final line) */
  done(info?: string): void;
}

/** What the runner hands an experiment's `run`. */
export interface RunContext {
  readonly runId: string;
  readonly runDir: string;
  readonly artifactsDir: string;
  readonly checkpointsDir: string;
  /** the run's master seed (from the config) */
  readonly seed: number;
  /** aborted on SIGINT / SIGTERM: stop at the next safe point (write a checkpoint if cheap) */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** set when the run was resumed (`rass run --resume`): the latest checkpoint directory, if any */
  readonly resume?: { checkpointDir?: string };
  /** log parameters; nested objects are flattened to dotted keys, values become strings */
  logParams(params: Record<string, unknown>): void;
  /** log scalar metrics at one step (one journal event) */
  logMetrics(step: number, values: Record<string, number>): void;
  setTags(tags: Record<string, string>): void;
  /** write `artifacts/<relPath>` atomically (temp file, then rename) and journal it with size and sha256 */
  logArtifact(relPath: string, data: string | Uint8Array): Promise<void>;
  /**
   * Save a checkpoint: `write` fills a fresh directory, which then atomically becomes
   * `checkpoints/<name>/` and the latest checkpoint (what a resumed run receives).
   */
  saveCheckpoint(name: string, write: (dir: string) => Promise<void> | void): Promise<string>;
  progress(label: string, total: number): ProgressHandle;
  /** build a nested component node of the config */
  build<T = unknown>(node: ComponentNode, opts?: { expectKind?: PluginKind; path?: string }): Promise<T>;
}

/**
 * What `experiment/*` plugins build. `run` does the work; a returned record of numbers is
 * logged as the run's final metrics (and shown in the summary table).
 */
export interface Experiment {
  run(ctx: RunContext): Promise<void | Record<string, number>>;
}
