import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, toFloat32, writeSafetensors, UserError, type SafetensorsEntry, type WritableTensor } from '../../../framework/api.js';
import type { LoraConfig } from './lora.js';

/**
 * PEFT's on-disk LoRA format (peft 0.21): `adapter_config.json` + `adapter_model.safetensors`.
 * Keys are the module names under `base_model.model.` with torch layouts:
 *   <module>.lora_A.weight, <module>.lora_B.weight (+ <module>.lora_B.bias with lora_bias)
 *   <module>.<param> for the modules listed in modules_to_save (the whole trained copy).
 * This file owns the JSON fields and key names; lora.ts owns the maths.
 */
export const CONFIG_FILE = 'adapter_config.json';
export const WEIGHTS_FILE = 'adapter_model.safetensors';
const PREFIX = 'base_model.model.';

export const loraKey = (module: string, which: 'A' | 'B', leaf: 'weight' | 'bias' = 'weight'): string => `${PREFIX}${module}.lora_${which}.${leaf}`;
/** Key of a full parameter of a modules_to_save module (peft strips `modules_to_save.<adapter>.`). */
export const savedParamKey = (param: string): string => `${PREFIX}${param}`;

/** torch layout -> tfjs layout for a LoRA factor or a saved weight: conv OIHW -> HWIO, linear [out, in] -> [in, out]. */
export function fromTorchLayout(e: SafetensorsEntry, kind: 'linear' | 'conv' | 'plain'): tf.Tensor {
  return tf.tidy(() => {
    const t = tf.tensor(toFloat32(e), e.shape);
    if (kind === 'conv') return tf.transpose(t, [2, 3, 1, 0]);
    if (kind === 'linear') return tf.transpose(t, [1, 0]);
    return t;
  });
}

export function toTorchLayout(v: tf.Tensor, kind: 'linear' | 'conv' | 'plain'): WritableTensor {
  const t = tf.tidy(() => (kind === 'conv' ? tf.transpose(v, [3, 2, 0, 1]) : kind === 'linear' ? tf.transpose(v, [1, 0]) : tf.clone(v)));
  const out: WritableTensor = { dtype: 'F32', shape: t.shape, data: Float32Array.from(t.dataSync()) };
  t.dispose();
  return out;
}

const isEmpty = (v: unknown): boolean =>
  v === null || v === undefined || v === false || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0);

/**
 * Every LoraConfig field of peft 0.21 this loader knows, and what it does with it. `ignore`:
 * informational or runtime-only, any value. `refuse`: any value other than empty/false is a
 * UserError naming the field and value (the option changes the computation in a way this
 * implementation does not reproduce). Fields it does not know are refused the same way
 * unless empty, so a newer peft option is never silently dropped.
 */
const IGNORED = new Set([
  'peft_type', 'peft_version', 'auto_mapping', 'base_model_name_or_path', 'revision', 'task_type', 'inference_mode',
  // only meaningful with megatron_config / use_qalora, which are refused when set
  'megatron_core', 'qalora_group_size',
]);
const IMPLEMENTED = new Set([
  'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'exclude_modules', 'init_lora_weights', 'use_rslora', 'modules_to_save',
  'layers_to_transform', 'layers_pattern', 'rank_pattern', 'alpha_pattern', 'lora_bias', 'bias', 'fan_in_fan_out', 'use_dora',
]);
const REFUSED: Record<string, string> = {
  use_dora: 'DoRA (weight-decomposed LoRA) is not implemented',
  fan_in_fan_out: 'only for Conv1D-style [in, out] weights, which diffusers models do not have',
  bias: "training base biases is not implemented (only bias: 'none')",
  megatron_config: 'Megatron parallel layers are not supported',
  trainable_token_indices: 'trainable token embeddings are not supported',
  loftq_config: 'LoftQ quantisation-aware init is not supported',
  eva_config: 'EVA init is not supported',
  corda_config: 'CorDA init is not supported',
  lora_ga_config: 'LoRA-GA init is not supported',
  velora_config: 'VeLoRA is not supported',
  monteclora_config: 'MonteCLoRA is not supported',
  arrow_config: 'Arrow routing is not supported',
  kasa_config: 'KaSA is not supported',
  alora_invocation_tokens: 'activated LoRA (aLoRA) is not supported',
  use_qalora: 'QALoRA is not supported',
  layer_replication: 'layer replication is not supported',
  target_parameters: 'LoRA on raw nn.Parameters (target_parameters) is not supported',
  use_bdlora: 'block-diagonal LoRA is not supported',
  ensure_weight_tying: 'tied embedding weights are not supported',
  runtime_config: 'runtime options are not supported',
};

/** The names of every field peft 0.21's LoraConfig writes and what this project does with it (docs and tests). */
export const PEFT_FIELDS = { ignored: [...IGNORED], implemented: [...IMPLEMENTED].filter((k) => !(k in REFUSED)), refused: Object.keys(REFUSED) };

function fail(path: string, field: string, value: unknown, why: string): never {
  throw new UserError(`${path}: PEFT option ${field}=${JSON.stringify(value)} is not supported (${why})`);
}

function stringList(path: string, field: string, v: unknown): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) fail(path, field, v, 'expected a list of strings');
  return v as string[];
}

function numberMap(path: string, field: string, v: unknown, integer: boolean): Record<string, number> | undefined {
  if (isEmpty(v)) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) fail(path, field, v, 'expected a mapping of module pattern to number');
  for (const [k, x] of Object.entries(v as object)) {
    if (typeof x !== 'number' || (integer && !(Number.isInteger(x) && x > 0))) fail(path, `${field}.${k}`, x, integer ? 'expected a positive integer rank' : 'expected a number');
  }
  return v as Record<string, number>;
}

/** Parse peft's adapter_config.json into a LoraConfig; anything this project does not reproduce is refused by name. */
export function parsePeftConfig(raw: Record<string, unknown>, path: string): LoraConfig {
  if (raw.peft_type !== 'LORA') throw new UserError(`${path}: peft_type ${JSON.stringify(raw.peft_type)} is not LORA`);
  for (const [k, v] of Object.entries(raw)) {
    if (IGNORED.has(k)) continue;
    if (k in REFUSED) {
      if (k === 'bias' ? v !== 'none' && v !== null : !isEmpty(v)) fail(path, k, v, REFUSED[k] as string);
      continue;
    }
    if (!IMPLEMENTED.has(k) && !isEmpty(v)) fail(path, k, v, 'unknown to this implementation');
  }
  const r = raw.r;
  if (!(typeof r === 'number' && Number.isInteger(r) && r > 0)) fail(path, 'r', r, 'expected a positive integer');
  if (typeof raw.lora_alpha !== 'number') fail(path, 'lora_alpha', raw.lora_alpha, 'expected a number');
  const tm = raw.target_modules;
  if (tm === 'all-linear') fail(path, 'target_modules', tm, "peft resolves 'all-linear' only for transformers models");
  const targetModules = typeof tm === 'string' ? tm : stringList(path, 'target_modules', tm);
  const init = raw.init_lora_weights ?? true;
  if (init !== true && init !== false && init !== 'gaussian') fail(path, 'init_lora_weights', init, 'only true, false and "gaussian" (other inits change the base weights or need data)');
  const ex = raw.exclude_modules;
  const lt = raw.layers_to_transform;
  if (!isEmpty(lt) && !(Number.isInteger(lt) || (Array.isArray(lt) && lt.every((x) => Number.isInteger(x))))) fail(path, 'layers_to_transform', lt, 'expected an integer or a list of integers');
  const lp = raw.layers_pattern;
  if (!isEmpty(lp) && typeof lp !== 'string') stringList(path, 'layers_pattern', lp);
  if (!isEmpty(raw.modules_to_save)) stringList(path, 'modules_to_save', raw.modules_to_save);
  return {
    r,
    alpha: raw.lora_alpha,
    dropout: typeof raw.lora_dropout === 'number' ? raw.lora_dropout : 0,
    targetModules,
    excludeModules: isEmpty(ex) ? undefined : typeof ex === 'string' ? ex : stringList(path, 'exclude_modules', ex),
    init: init === 'gaussian' ? 'gaussian' : 'kaiming',
    useRslora: Boolean(raw.use_rslora),
    modulesToSave: isEmpty(raw.modules_to_save) ? undefined : (raw.modules_to_save as string[]),
    layersToTransform: isEmpty(lt) ? undefined : (lt as number | number[]),
    layersPattern: isEmpty(lp) ? undefined : (lp as string | string[]),
    rankPattern: numberMap(path, 'rank_pattern', raw.rank_pattern, true),
    alphaPattern: numberMap(path, 'alpha_pattern', raw.alpha_pattern, false),
    loraBias: Boolean(raw.lora_bias),
  };
}

/** The adapter_config.json peft writes for `c` (the fields peft's LoraConfig(**json) needs). */
export function peftConfigJson(c: LoraConfig): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    r: c.r,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout ?? 0,
    target_modules: typeof c.targetModules === 'string' ? c.targetModules : [...c.targetModules],
    exclude_modules: c.excludeModules === undefined ? null : typeof c.excludeModules === 'string' ? c.excludeModules : [...c.excludeModules],
    init_lora_weights: c.init === 'kaiming' ? true : 'gaussian',
    use_rslora: c.useRslora ?? false,
    use_dora: false,
    bias: 'none',
    lora_bias: c.loraBias ?? false,
    fan_in_fan_out: false,
    modules_to_save: c.modulesToSave?.length ? [...c.modulesToSave] : null,
    rank_pattern: { ...(c.rankPattern ?? {}) },
    alpha_pattern: { ...(c.alphaPattern ?? {}) },
    layers_to_transform: c.layersToTransform ?? null,
    layers_pattern: c.layersPattern ?? null,
    base_model_name_or_path: null,
    task_type: null,
    inference_mode: true,
    revision: null,
  };
}

/** Read a PEFT adapter folder: its parsed config and its tensors by key. */
export function readPeftAdapter(dir: string): { config: LoraConfig; configPath: string; file: string; tensors: ReadonlyMap<string, SafetensorsEntry> } {
  const configPath = join(dir, CONFIG_FILE);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${configPath}: cannot read PEFT adapter config (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${configPath}: expected a JSON object`);
  const config = parsePeftConfig(raw, configPath);
  const file = join(dir, WEIGHTS_FILE);
  let tensors: ReadonlyMap<string, SafetensorsEntry>;
  try {
    tensors = readSafetensors(file).tensors;
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${file}: cannot read PEFT adapter weights (${(e as Error).message})`);
  }
  return { config, configPath, file, tensors };
}

/** Write a PEFT adapter folder (fp32 tensors in torch layouts, keyed as above). */
export function writePeftAdapter(dir: string, config: LoraConfig, tensors: Record<string, WritableTensor>): void {
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { format: 'pt' });
  writeFileSync(join(dir, CONFIG_FILE), `${JSON.stringify(peftConfigJson(config), null, 2)}\n`);
}
