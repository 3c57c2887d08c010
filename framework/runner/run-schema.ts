import type { FromSchema } from 'json-schema-to-ts';
import { componentSchema } from '../plugins/schema-helpers.js';

/**
 * JSON Schema of a run config's top level. Component nodes inside (`experiment`, and any
 * node below it with `type: kind/name`) are validated against their plugin's schema by the
 * config validator; this schema covers only the framework's own keys.
 */
export const runConfigSchema = {
  type: 'object',
  required: ['experiment'],
  additionalProperties: false,
  properties: {
    extends: { description: 'base config file(s), relative to this file; merged in order', anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
    plugins: { type: 'array', items: { type: 'string' }, description: 'third-party plugin packages: npm names or paths relative to the config file' },
    name: { type: 'string', description: 'run name (defaults to the experiment plugin name)' },
    description: { type: 'string' },
    experiment: componentSchema('experiment', 'the experiment plugin to run and its options'),
    seed: { type: 'integer', minimum: 0, default: 0, description: 'master seed: initialisation, data order, degradations' },
    backend: { enum: ['auto', 'tensorflow', 'wasm', 'cpu'], default: 'auto', description: 'tfjs backend; auto tries native, then wasm, then cpu' },
    threads: { type: 'integer', minimum: 0, default: 0, description: 'native TensorFlow intra-/inter-op threads (`rass run --threads`); 0: RASS_THREADS, else the cores the process may use' },
    onednn: { enum: ['auto', 'on', 'off'], default: 'auto', description: "TensorFlow's oneDNN ops on the native backend: auto leaves TF_ENABLE_ONEDNN_OPTS, else TensorFlow's CPU default; on at diffusion resolutions (half the UNet step's time and memory), off can be faster for steps of many small ops" },
    tags: { type: 'object', additionalProperties: { type: 'string' }, description: 'extra run tags' },
    fail_on_nan: {
      anyOf: [{ type: 'boolean' }, { type: 'array', items: { type: 'string', minLength: 1 } }],
      default: ['*loss*'],
      description: 'fail the run when a logged metric matching one of these name globs (* = any characters) becomes NaN or infinite; true: any metric, false: never',
    },
    runs_dir: { type: 'string', default: 'runs', description: 'local run store directory (relative to the working directory)' },
    tracking: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        trackers: {
          type: 'array',
          items: { type: 'object', required: ['type'], properties: { type: { type: 'string', pattern: '^tracker/' } } },
          description: 'tracker plugins that mirror the run ({type: tracker/NAME, ...options}); default: [{type: tracker/mlflow, ...tracking.mlflow}]',
        },
        mlflow: {
          type: 'object',
          additionalProperties: false,
          properties: {
            uri: { type: 'string', description: 'MLflow tracking URI (overrides MLFLOW_TRACKING_URI)' },
            experiment_name: { type: 'string', description: 'MLflow experiment (defaults to the run\'s experiment name)' },
            log_checkpoints: { type: 'boolean', default: false },
          },
        },
      },
    },
    sweep: { type: 'object', description: 'ablation sweep spec (see `rass sweep`)' },
    vars: { type: 'object', description: 'free-form values for ${...} interpolation; not validated' },
  },
} as const;

/**
 * A validated run config (defaults applied), typed from the schema above so the two cannot
 * drift; `vars` is free-form and `extends` is consumed by the loader.
 */
export type RunConfigValue = FromSchema<typeof runConfigSchema>;
