/**
 * Starting the MLflow tracker for a run: applies when its `tracker/mlflow` options (or the
 * `tracking.mlflow` block) or the environment's MLFLOW_TRACKING_URI give a URI.
 */
import { UserError } from '../../errors.js';
import type { RunTracker, TrackerFactory, TrackerRunInfo } from '../tracker.js';
import { MlflowClient, clientOptionsFromEnv } from './client.js';
import { stripCredentials } from './redact.js';
import { ThreadedMlflowTracker } from './threaded-tracker.js';

export interface MlflowConfig {
  uri?: string;
  experiment_name?: string;
  log_checkpoints?: boolean;
}

/**
 * The MLflow settings of a run config: a `tracker/mlflow` node of `tracking.trackers`, else
 * the `tracking.mlflow` block; the URI and experiment fall back to the environment. Undefined
 * when no URI is set anywhere (MLflow does not apply).
 */
export function mlflowConfigOf(run: Pick<TrackerRunInfo, 'config' | 'env'>): (MlflowConfig & { uri: string }) | undefined {
  const tracking = (run.config.tracking ?? {}) as { mlflow?: MlflowConfig; trackers?: Array<{ type?: string } & MlflowConfig> };
  if (Array.isArray(tracking.trackers)) {
    const node = tracking.trackers.find((t) => t?.type === 'tracker/mlflow');
    if (!node) return undefined; // a trackers list without MLflow turns it off
    const { type: _t, ...cfg } = node;
    return withEnv(cfg, run.env);
  }
  return withEnv(tracking.mlflow ?? {}, run.env);
}

/** Options of a `tracker/mlflow` node completed from the environment; undefined without a URI. */
export function withEnv(cfg: MlflowConfig, env: Record<string, string | undefined>): (MlflowConfig & { uri: string }) | undefined {
  const uri = cfg.uri || env.MLFLOW_TRACKING_URI;
  if (!uri) return undefined;
  return { ...cfg, uri, experiment_name: cfg.experiment_name || env.MLFLOW_EXPERIMENT_NAME || undefined };
}

/** Start the threaded MLflow tracker for a run with these settings (a bad URI is a UserError). */
export async function startMlflowTracker(cfg: MlflowConfig & { uri: string }, run: TrackerRunInfo): Promise<RunTracker> {
  if (!/^https?:\/\//iu.test(cfg.uri)) {
    throw new UserError(`tracking.mlflow.uri / MLFLOW_TRACKING_URI: "${stripCredentials(cfg.uri)}" is not an http(s) URL of an MLflow tracking server (file stores and databricks URIs are not supported)`);
  }
  const clientOptions = clientOptionsFromEnv(cfg.uri, run.env);
  // Validates the URI here, in the caller's thread, so a bad one is a clear error at start.
  new MlflowClient(clientOptions);
  return ThreadedMlflowTracker.start({
    client: clientOptions,
    tracker: { dir: run.dir, env: run.env, experimentName: cfg.experiment_name, logCheckpoints: cfg.log_checkpoints === true },
  });
}

export const mlflowTrackerFactory: TrackerFactory = async (run) => {
  const cfg = mlflowConfigOf(run);
  return cfg ? startMlflowTracker(cfg, run) : undefined;
};
