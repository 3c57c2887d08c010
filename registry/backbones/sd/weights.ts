import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fromTorch, toTorch, type ParamStore } from './nn.js';
import { UserError, readSafetensors, toFloat32, type SafetensorsEntry, type WritableTensor } from '../../../framework/api.js';

/** Buffers some checkpoints carry that are not parameters. */
const IGNORED = [/\.position_ids$/];

/** Read every tensor of one safetensors file or a sharded `*.safetensors.index.json`. */
export function readWeightFiles(path: string): Map<string, SafetensorsEntry> {
  if (path.endsWith('.index.json')) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(readFileSync(path, 'utf8')) as typeof index;
    } catch (e) {
      throw new UserError(`${path}: cannot read shard index (${(e as Error).message})`);
    }
    const out = new Map<string, SafetensorsEntry>();
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) {
      for (const [k, v] of readSafetensors(join(dirname(path), shard)).tensors) out.set(k, v);
    }
    return out;
  }
  return readSafetensors(path).tensors;
}

/**
 * Assign weights stored under diffusers/transformers key names (torch layouts, any float
 * dtype: fp16/bf16 are upcast to fp32) to the store. Missing or unexpected keys and shape
 * mismatches are errors that list the offending names.
 */
export function loadWeights(store: ParamStore, tensors: Map<string, SafetensorsEntry>, where: string, opts: { strict?: boolean } = {}): void {
  const missing: string[] = [];
  const badShape: string[] = [];
  for (const [name, p] of store.params) {
    const e = tensors.get(name);
    if (!e) {
      missing.push(name);
      continue;
    }
    if (e.shape.join(',') !== p.torchShape.join(',')) badShape.push(`${name}: file has [${e.shape}] but the model needs [${p.torchShape}]`);
  }
  const unexpected = [...tensors.keys()].filter((k) => !store.params.has(k) && !IGNORED.some((r) => r.test(k)));
  const problems: string[] = [];
  if (missing.length) problems.push(`missing ${missing.length} key(s): ${list(missing)}`);
  if (badShape.length) problems.push(`shape mismatch: ${list(badShape)}`);
  if ((opts.strict ?? true) && unexpected.length) problems.push(`unexpected ${unexpected.length} key(s) (config does not match the weights?): ${list(unexpected)}`);
  if (problems.length) throw new UserError(`${where}: ${problems.join('; ')}`);
  for (const [name, p] of store.params) {
    const e = tensors.get(name) as SafetensorsEntry;
    tf.tidy(() => p.variable.assign(fromTorch(tf.tensor(toFloat32(e), e.shape), p.layout)));
  }
}

/** The store's parameters as torch-layout fp32 tensors under their diffusers names. */
export function exportWeights(store: ParamStore, filter?: (name: string) => boolean): Record<string, WritableTensor> {
  const out: Record<string, WritableTensor> = {};
  for (const [name, p] of store.params) {
    if (filter && !filter(name)) continue;
    const data = tf.tidy(() => toTorch(p.variable, p.layout)).dataSync() as Float32Array;
    out[name] = { dtype: 'F32', shape: p.torchShape, data: Float32Array.from(data) };
  }
  return out;
}

function list(names: string[]): string {
  return names.length > 8 ? `${names.slice(0, 8).join(', ')}, ... (${names.length - 8} more)` : names.join(', ');
}

/** Find a component's weight file in a diffusers folder (`unet/diffusion_pytorch_model.safetensors` etc.). */
export function findWeightFile(dir: string, candidates: readonly string[]): string | null {
  for (const c of candidates) if (existsSync(join(dir, c))) return join(dir, c);
  return null;
}
