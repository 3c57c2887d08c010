/**
 * Remote trackers mirror a run's journal somewhere else; the contract lives in
 * contracts/tracker.ts (trackers are plugins). A TrackerFactory is a tracker's `start`.
 */
import type { RunTracker, TrackerRunInfo } from '../contracts/tracker.js';

export type { RunTracker, TrackerRunInfo, Tracker } from '../contracts/tracker.js';

/** Returns a tracker when its configuration (config keys / environment) asks for one, else undefined. */
export type TrackerFactory = (run: TrackerRunInfo) => Promise<RunTracker | undefined>;
