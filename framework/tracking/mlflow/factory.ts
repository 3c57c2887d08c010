/**
 * The runner's MLflow tracker factory: applies when config `tracking.mlflow.uri` or the
 * environment's MLFLOW_TRACKING_URI is set.
 */
import { UserError } from '../../errors.js';
import type { TrackerFactory, TrackerRunInfo } from '../tracker.js';
import { MlflowClient, clientOptionsFromEnv } from './client.js';
import { stripCredentials } from './redact.js';
import { ThreadedMlflowTracker } from './threaded-tracker.js';

interface MlflowConfig {
  uri?: string;
  experiment_name?: string;
  log_checkpoints?: boolean;
}

export function mlflowConfigOf(run: Pick<TrackerRunInfo, 'config' | 'env'>): (MlflowConfig & { uri: string }) | undefined {
  const tracking = (run.config.tracking ?? {}) as { mlflow?: MlflowConfig };
  const cfg = tracking.mlflow ?? {};
  const uri = cfg.uri || run.env.MLFLOW_TRACKING_URI;
  if (!uri) return undefined;
  return { ...cfg, uri, experiment_name: cfg.experiment_name || run.env.MLFLOW_EXPERIMENT_NAME || undefined };
}

export const mlflowTrackerFactory: TrackerFactory = async (run) => {
  const cfg = mlflowConfigOf(run);
  if (!cfg) return undefined;
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
};
