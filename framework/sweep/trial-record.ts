/** What a sweep records of one trial: its overrides, labels, run and outcome (the report reads it too). */
export type TrialState = 'FINISHED' | 'FAILED' | 'KILLED' | 'RUNNING' | 'PENDING' | 'SKIPPED';

export interface TrialRecord {
  id: string;
  overrides: string[];
  labels: Record<string, string>;
  runId: string;
  /** the trial's experiment (its run lives in <runs>/<experiment>/<runId>); variants can change it */
  experiment: string;
  dir: string;
  state: TrialState;
  message?: string;
  metrics: Record<string, number>;
}
