import type { RunTracker, TrackerFactory, TrackerRunInfo } from './tracker.js';
import { mlflowTrackerFactory } from './mlflow/factory.js';

/**
 * The remote trackers the runner consults for every run, in order. Each decides from the
 * run's config and environment whether it applies (e.g. MLflow when a tracking URI is set).
 */
export const trackerFactories: TrackerFactory[] = [mlflowTrackerFactory];

/**
 * The trackers that apply to a run the sweep executor writes (a sweep's parent, a dead
 * trial's final status). Unlike the runner, which fails a run on a bad tracking config, these
 * runs already exist: a tracker that cannot start is a warning, and the journal keeps
 * everything for `rass runs sync`.
 */
export async function startTrackers(run: TrackerRunInfo, warn: (m: string) => void): Promise<RunTracker[]> {
  const trackers: RunTracker[] = [];
  for (const f of trackerFactories) {
    try {
      const t = await f(run);
      if (t) trackers.push(t);
    } catch (e) {
      warn(`tracker failed to start for ${run.dir}: ${(e as Error).message}`);
    }
  }
  return trackers;
}
