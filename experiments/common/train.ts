import { componentSchema, Optimizer, type OptimizerOptions, type ScheduleSpec } from '../../framework/api.js';

/**
 * The optimiser and schedule options the image experiments share, as JSON Schema (so a
 * config is checked before anything runs) and the engine objects they build.
 */
export const optimizerSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    type: { enum: ['adamw', 'sgd'], default: 'adamw' },
    lr: { type: 'number', exclusiveMinimum: 0, default: 1e-4 },
    weight_decay: { type: 'number', minimum: 0, default: 0.01 },
    betas: { type: 'array', items: { type: 'number', minimum: 0, exclusiveMaximum: 1 }, minItems: 2, maxItems: 2, default: [0.9, 0.999] },
    eps: { type: 'number', exclusiveMinimum: 0, default: 1e-8 },
    momentum: { type: 'number', minimum: 0, default: 0.9, description: 'sgd only' },
  },
} as const;

export const scheduleSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    type: { enum: ['constant', 'poly', 'cosine'], default: 'constant' },
    power: { type: 'number', minimum: 0, default: 0.9, description: 'poly only' },
    min_lr: { type: 'number', minimum: 0, default: 0 },
    warmup_iters: { type: 'integer', minimum: 0, default: 0 },
    warmup_ratio: { type: 'number', minimum: 0, maximum: 1, default: 0.001, description: 'lr factor at step 0 of the linear warmup' },
  },
} as const;

export interface OptimizerConfig {
  type: 'adamw' | 'sgd';
  lr: number;
  weight_decay: number;
  betas: readonly number[];
  eps: number;
  momentum: number;
}

export interface ScheduleConfig {
  type: 'constant' | 'poly' | 'cosine';
  power: number;
  min_lr: number;
  warmup_iters: number;
  warmup_ratio: number;
}

export function scheduleSpec(s: ScheduleConfig, steps: number): ScheduleSpec {
  return { type: s.type, max_steps: steps, power: s.power, min_lr: s.min_lr, warmup: s.warmup_iters > 0 ? { iters: s.warmup_iters, ratio: s.warmup_ratio } : undefined };
}

/** An engine optimiser over named variables; `groups` gives lr multipliers / weight decay per name pattern. */
export function makeOptimizer(vars: Record<string, import('../../framework/api.js').tf.Variable>, o: OptimizerConfig, s: ScheduleConfig, steps: number, groups: OptimizerOptions['groups'] = []): Optimizer {
  return new Optimizer(vars, {
    type: o.type,
    lr: o.lr,
    weight_decay: o.weight_decay,
    betas: [o.betas[0] as number, o.betas[1] as number],
    eps: o.eps,
    momentum: o.momentum,
    schedule: scheduleSpec(s, steps),
    groups,
  });
}

/** The `[height, width]` crop option of the image experiments' data blocks. */
export const cropSchema = {
  type: 'array',
  items: { type: 'integer', minimum: 8 },
  minItems: 2,
  maxItems: 2,
  description: '[height, width] crop (random in training, centred in validation); needed when images differ in size',
} as const;

/** Options of the image experiments' `train` data block (an experiment adds its own keys). */
export const trainDataProperties = {
  dataset: componentSchema('dataset'),
  degradation: componentSchema('degradation', 'makes LQ from HQ on the fly, seeded per sample and epoch (omit for a paired dataset)'),
  crop: cropSchema,
  batch_size: { type: 'integer', minimum: 1, default: 4 },
} as const;

/** Options of the image experiments' `val` data block. */
export const valDataProperties = {
  dataset: componentSchema('dataset'),
  degradation: componentSchema('degradation', 'LQ for validation, fixed per sample (omit for a paired dataset)'),
  crop: cropSchema,
  batch_size: { type: 'integer', minimum: 1, default: 8 },
  size: { type: 'integer', minimum: 1, description: 'use the first N samples (default: all)' },
  images: { type: 'integer', minimum: 0, default: 4, description: 'validation images in the artifact grids' },
} as const;

/** Per-step values averaged over the steps between two metric log lines. */
export class MetricWindow {
  private readonly values: Record<string, number[]> = {};

  add(step: Record<string, number>): void {
    for (const [k, v] of Object.entries(step)) (this.values[k] ??= []).push(v);
  }

  /** The means since the last flush (and start a new window). */
  flush(): Record<string, number> {
    const out = Object.fromEntries(Object.entries(this.values).map(([k, vs]) => [k, vs.reduce((a, b) => a + b, 0) / vs.length]));
    for (const k of Object.keys(this.values)) delete this.values[k];
    return out;
  }
}

/** The loop options SCR and RASS share: its length, and how often it logs, evaluates and checkpoints. */
export const loopProperties = {
  steps: { type: 'integer', minimum: 1, default: 500 },
  log_every: { type: 'integer', minimum: 1, default: 10 },
  eval_every: { type: 'integer', minimum: 1, default: 250 },
  checkpoint_every: { type: 'integer', minimum: 1, default: 250 },
} as const;

/** The checkpoint folder of a training step (`step-000120`): zero-padded so folders sort by step. */
export function stepCheckpointName(step: number, prefix = 'step'): string {
  return `${prefix}-${String(step).padStart(6, '0')}`;
}
