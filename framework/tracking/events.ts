/**
 * The run journal's event types: one JSON object per line of `journal.jsonl`.
 * The journal is the write-ahead log of a run: every tracker (MLflow, ...) replays it,
 * so anything a tracker needs must be in an event. `seq` is contiguous from 0 within a
 * run; `t` is wall-clock milliseconds since the epoch when the event was recorded.
 */
export type RunStatus = 'RUNNING' | 'FINISHED' | 'FAILED' | 'KILLED';

interface Base {
  seq: number;
  t: number;
}

export type JournalEvent =
  | (Base & { type: 'run'; runId: string; experiment: string; name: string; parentRunId?: string; configHash?: string })
  | (Base & { type: 'params'; params: Record<string, string> })
  /** One or more metric values at one step (a training step logs all its scalars in one event). */
  | (Base & { type: 'metrics'; step: number; values: Record<string, number> })
  | (Base & { type: 'tags'; tags: Record<string, string> })
  | (Base & { type: 'status'; status: RunStatus; message?: string })
  /** A file under the run's artifacts/ directory, recorded after it was fully written. */
  | (Base & { type: 'artifact'; path: string; size: number; sha256: string })
  /** A dataset the run consumed (MLflow log-inputs). */
  | (Base & { type: 'input'; name: string; digest: string; source: string; context?: string });

export type JournalEventType = JournalEvent['type'];

/** An event before the journal assigned `seq` and `t`. */
export type NewJournalEvent = JournalEvent extends infer E ? (E extends Base ? Omit<E, 'seq' | 't'> & { t?: number } : never) : never;
