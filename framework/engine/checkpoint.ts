import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../errors.js';
import { readSafetensors, toFloat32, writeSafetensors, type WritableTensor } from './safetensors.js';
import type { OptimizerState } from './optim.js';
import type { RngKey, RngState } from './rng.js';

/**
 * Training checkpoints: everything needed for the next step to be the step that would have
 * come without stopping. A checkpoint is a directory:
 *   weights.safetensors    model/adapter weights by parameter name
 *   optimizer.safetensors  optimiser slots (`<param>/<slot>`), when given
 *   state.json             optimiser step, schedule step, RNG states, data position, extra
 * written into a temporary sibling directory and renamed into place, so a crash never leaves
 * a half-written checkpoint under the final name.
 */
export interface CheckpointContents {
  weights: Record<string, tf.Tensor>;
  optimizer?: OptimizerState;
  schedule?: { step: number };
  rng?: Record<string, { keys: RngKey[]; state: RngState }>;
  /** data-loader position, e.g. { epoch, index } */
  data?: unknown;
  extra?: unknown;
}

export interface LoadedCheckpoint {
  weights: Record<string, { shape: number[]; data: Float32Array }>;
  optimizer?: OptimizerState;
  schedule?: { step: number };
  rng?: Record<string, { keys: RngKey[]; state: RngState }>;
  data?: unknown;
  extra?: unknown;
}

const FORMAT = 'rass-checkpoint/1';

function f32(t: tf.Tensor): WritableTensor {
  return { dtype: 'F32', shape: t.shape, data: Float32Array.from(t.dataSync() as Float32Array) };
}

export function saveCheckpoint(dir: string, c: CheckpointContents): void {
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeSafetensors(join(tmp, 'weights.safetensors'), Object.fromEntries(Object.entries(c.weights).map(([k, t]) => [k, f32(t)])), { format: FORMAT });
  if (c.optimizer) {
    writeSafetensors(join(tmp, 'optimizer.safetensors'), Object.fromEntries(Object.entries(c.optimizer.slots).map(([k, s]) => [k, { dtype: 'F32' as const, shape: s.shape, data: s.data }])), { format: FORMAT });
  }
  const state = { format: FORMAT, optimizer_step: c.optimizer?.step, schedule: c.schedule, rng: c.rng, data: c.data, extra: c.extra };
  const stateFile = join(tmp, 'state.json');
  writeFileSync(stateFile, JSON.stringify(state, null, 2) + '\n');
  const fd = openSync(stateFile, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const stateFile = join(dir, 'state.json');
  if (!existsSync(dir)) throw new UserError(`checkpoint ${dir} does not exist`);
  if (!existsSync(stateFile)) throw new UserError(`${stateFile}: missing (not a complete checkpoint)`);
  let state: { format?: string; optimizer_step?: number; schedule?: { step: number }; rng?: LoadedCheckpoint['rng']; data?: unknown; extra?: unknown };
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8'));
  } catch (e) {
    throw new UserError(`${stateFile}: not valid JSON (${(e as Error).message})`);
  }
  if (state.format !== FORMAT) throw new UserError(`${stateFile}: unknown checkpoint format ${JSON.stringify(state.format)} (expected ${FORMAT})`);
  const read = (file: string) => {
    const f = readSafetensors(join(dir, file));
    return Object.fromEntries([...f.tensors].map(([k, e]) => [k, { shape: e.shape, data: toFloat32(e) }]));
  };
  const weights = read('weights.safetensors');
  let optimizer: OptimizerState | undefined;
  if (state.optimizer_step !== undefined) {
    if (!existsSync(join(dir, 'optimizer.safetensors'))) throw new UserError(`${join(dir, 'optimizer.safetensors')}: missing (state.json records an optimiser step)`);
    optimizer = { step: state.optimizer_step, slots: read('optimizer.safetensors') };
  }
  return { weights, optimizer, schedule: state.schedule, rng: state.rng, data: state.data, extra: state.extra };
}

/** Assign loaded weights to variables, checking that names and shapes match exactly. */
export function restoreWeights(vars: Record<string, tf.Variable>, loaded: LoadedCheckpoint['weights'], where: string): void {
  const missing = Object.keys(vars).filter((k) => !(k in loaded));
  const unexpected = Object.keys(loaded).filter((k) => !(k in vars));
  if (missing.length || unexpected.length) {
    throw new UserError(`${where}: checkpoint weights do not match the model${missing.length ? `; missing: ${missing.join(', ')}` : ''}${unexpected.length ? `; unexpected: ${unexpected.join(', ')}` : ''}`);
  }
  for (const [k, v] of Object.entries(vars)) {
    const w = loaded[k];
    if (w.shape.join('x') !== v.shape.join('x')) throw new UserError(`${where}: weight ${k} has shape [${w.shape}] in the checkpoint but [${v.shape}] in the model`);
    tf.tidy(() => v.assign(tf.tensor(w.data, w.shape)));
  }
}
