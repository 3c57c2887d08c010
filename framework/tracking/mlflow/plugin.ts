/**
 * `tracker/mlflow`: mirrors runs to an MLflow tracking server (see README.md here). Selected by
 * default: a run config without `tracking.trackers` gets `{type: tracker/mlflow, ...tracking.mlflow}`,
 * which applies only when a URI is set (config or MLFLOW_TRACKING_URI).
 */
import { definePlugin } from '../../plugins/define-plugin.js';
import type { Tracker } from '../../contracts/tracker.js';
import { catchUpMirrors } from './catch-up.js';
import { startMlflowTracker, withEnv } from './factory.js';

export const mlflowTrackerPlugin = definePlugin({
  kind: 'tracker',
  name: 'mlflow',
  description: 'mirror runs to an MLflow tracking server (live, with retries; `rass runs sync` finishes what is left)',
  docs: 'Uses `uri` (else MLFLOW_TRACKING_URI; no URI: the tracker stays off), `experiment_name` (else MLFLOW_EXPERIMENT_NAME, else the run\'s experiment) and `log_checkpoints`. Auth from MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD.',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      uri: { type: 'string', description: 'MLflow tracking URI (overrides MLFLOW_TRACKING_URI)' },
      experiment_name: { type: 'string', description: "MLflow experiment (defaults to the run's experiment name)" },
      log_checkpoints: { type: 'boolean', default: false },
    },
  } as const,
  create(o): Tracker {
    return {
      async start(run) {
        const cfg = withEnv(o, run.env);
        return cfg ? startMlflowTracker(cfg, run) : undefined;
      },
      // each trial's own config says where it is mirrored
      catchUp: (dirs, ctx) => catchUpMirrors(dirs, ctx.runsRoot, ctx.env, ctx.warn),
    };
  },
});
