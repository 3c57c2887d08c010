import type { TrackerFactory } from './tracker.js';
import { mlflowTrackerFactory } from './mlflow/factory.js';

/**
 * The remote trackers the runner consults for every run, in order. Each decides from the
 * run's config and environment whether it applies (e.g. MLflow when a tracking URI is set).
 */
export const trackerFactories: TrackerFactory[] = [mlflowTrackerFactory];
