import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LayerDelta, ParameterHolder, TargetableLayer } from '../../../framework/api.js';
import { Rng, readSafetensors, toFloat32, writeSafetensors, UserError, type WritableTensor } from '../../../framework/api.js';

/**
 * LoRA with PEFT's semantics and file format. A wrapped layer computes
 *   y = base(x) + scale * B(A(dropout(x))),  scale = alpha / r  (alpha / sqrt(r) with rsLoRA);
 * for a conv base, A is a conv with the base kernel/stride/padding and B a 1x1 conv (as PEFT).
 * Target selection as PEFT's `target_modules`: a list matches module names equal to an
 * entry or ending in `.entry`; a single string is a regex that must match the whole name.
 */
export type LoraInit = 'gaussian' | 'kaiming';

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout?: number;
  targetModules: readonly string[] | string;
  /** A's init: `gaussian` N(0, 1/r) (PEFT "gaussian", OSEDiff), `kaiming` (PEFT's default). */
  init?: LoraInit;
  /** B's init: `zero` (PEFT: the adapter starts as a no-op) or `gaussian` (std `initBStd`, for tests). */
  initB?: 'zero' | 'gaussian';
  initBStd?: number;
  useRslora?: boolean;
}

/** Module names (of `names`) selected by PEFT-style targets; an entry that selects nothing is an error. */
export function matchTargets(names: readonly string[], targets: readonly string[] | string, where = 'target_modules'): string[] {
  if (typeof targets === 'string') {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targets})$`);
    } catch (e) {
      throw new UserError(`${where}: invalid regex ${JSON.stringify(targets)} (${(e as Error).message})`);
    }
    const hit = names.filter((n) => re.test(n));
    if (!hit.length) throw new UserError(`${where}: regex ${JSON.stringify(targets)} matches no Linear/Conv2d module (e.g. ${names.slice(0, 3).join(', ')})`);
    return hit;
  }
  if (!targets.length) throw new UserError(`${where}: empty target list`);
  const out = new Set<string>();
  for (const t of targets) {
    const hit = names.filter((n) => n === t || n.endsWith(`.${t}`));
    if (!hit.length) throw new UserError(`${where}: entry ${JSON.stringify(t)} matches no Linear/Conv2d module`);
    for (const h of hit) out.add(h);
  }
  return names.filter((n) => out.has(n));
}

export class LoraLayer implements LayerDelta {
  /** tfjs layouts: linear A [in, r], B [r, out]; conv A [k, k, in, r], B [1, 1, r, out]. */
  readonly A: tf.Variable;
  readonly B: tf.Variable;
  enabled = true;
  merged = false;
  training = false;
  constructor(
    readonly adapter: string,
    readonly base: TargetableLayer,
    readonly r: number,
    readonly scale: number,
    readonly dropout: number,
    private readonly rng: Rng,
    init: { a: LoraInit; b: 'zero' | 'gaussian'; bStd: number },
  ) {
    const w = base.weight.shape;
    const fanIn = base.kind === 'linear' ? (w[0] as number) : (w[0] as number) * (w[1] as number) * (w[2] as number);
    const aShape = base.kind === 'linear' ? [w[0] as number, r] : [w[0] as number, w[1] as number, w[2] as number, r];
    const bShape = base.kind === 'linear' ? [r, w[1] as number] : [1, 1, r, w[3] as number];
    const aInit = rng.fork('A');
    const aVals = new Float32Array(aShape.reduce((x, y) => x * y, 1));
    if (init.a === 'gaussian') aInit.fillNormal(aVals, 0, 1 / r);
    else {
      // kaiming_uniform(a=sqrt(5)) as torch/PEFT: bound = 1/sqrt(fan_in)
      aInit.fillUniform(aVals, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn));
    }
    const bVals = new Float32Array(bShape.reduce((x, y) => x * y, 1));
    if (init.b === 'gaussian') rng.fork('B').fillNormal(bVals, 0, init.bStd);
    const tag = `${adapter}/${base.path}`;
    this.A = tf.variable(tf.tensor(aVals, aShape), true, `lora_A:${tag}#${serial++}`);
    this.B = tf.variable(tf.tensor(bVals, bShape), true, `lora_B:${tag}#${serial++}`);
  }

  trainableVariables(): readonly tf.Variable[] {
    return [this.A, this.B];
  }

  delta(x: tf.Tensor): tf.Tensor | null {
    if (!this.enabled || this.merged) return null;
    const h = this.training && this.dropout > 0 ? tf.dropout(x, this.dropout, undefined, this.rng.nextU32()) : x;
    let y: tf.Tensor;
    if (this.base.kind === 'linear') {
      const shape = h.shape;
      const h2 = tf.reshape(h, [-1, shape[shape.length - 1] as number]) as tf.Tensor2D;
      y = tf.matMul(tf.matMul(h2, this.A as tf.Tensor2D), this.B as tf.Tensor2D);
      y = tf.reshape(y, [...shape.slice(0, -1), this.B.shape[1] as number]);
    } else {
      const p = this.base.padding ?? 0;
      const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [p, p], [p, p], [0, 0]];
      const a = tf.conv2d(h as tf.Tensor4D, this.A as tf.Tensor4D, this.base.stride ?? 1, p === 0 ? 'valid' : pad);
      y = tf.conv2d(a, this.B as tf.Tensor4D, 1, 'valid');
    }
    return tf.mul(y, this.scale);
  }

  /** scale * B.A in the base weight's layout. */
  deltaWeight(): tf.Tensor {
    return tf.tidy(() => {
      const w = this.base.weight.shape;
      if (this.base.kind === 'linear') return tf.mul(tf.matMul(this.A as tf.Tensor2D, this.B as tf.Tensor2D), this.scale);
      const a2 = tf.reshape(this.A, [-1, this.r]) as tf.Tensor2D;
      const b2 = tf.reshape(this.B, [this.r, -1]) as tf.Tensor2D;
      return tf.reshape(tf.mul(tf.matMul(a2, b2), this.scale), w);
    });
  }

  merge(): void {
    if (this.merged) return;
    tf.tidy(() => this.base.weight.assign(tf.add(this.base.weight, this.deltaWeight())));
    this.merged = true;
  }

  unmerge(): void {
    if (!this.merged) return;
    tf.tidy(() => this.base.weight.assign(tf.sub(this.base.weight, this.deltaWeight())));
    this.merged = false;
  }

  dispose(): void {
    const i = this.base.deltas.indexOf(this);
    if (i >= 0) this.base.deltas.splice(i, 1);
    this.A.dispose();
    this.B.dispose();
  }
}

let serial = 0;

interface NamedAdapter {
  config: LoraConfig;
  layers: Map<string, LoraLayer>;
}

/**
 * Several named LoRA adapters on one backbone. Adapters can be enabled/disabled, merged
 * into the base weights and unmerged, or merged and unloaded; saved and loaded in PEFT's
 * format (adapter_config.json + adapter_model.safetensors with `base_model.model.` keys).
 */
export class LoraModel {
  readonly adapters = new Map<string, NamedAdapter>();
  constructor(readonly target: ParameterHolder, private readonly seed = 0) {}

  add(name: string, config: LoraConfig, where = 'lora'): NamedAdapter {
    if (this.adapters.has(name)) throw new UserError(`${where}: adapter "${name}" already exists`);
    if (!(Number.isInteger(config.r) && config.r > 0)) throw new UserError(`${where}.r: rank must be a positive integer (got ${config.r})`);
    const names = matchTargets([...this.target.modules.keys()], config.targetModules, `${where}.target_modules`);
    const scale = config.useRslora ? config.alpha / Math.sqrt(config.r) : config.alpha / config.r;
    const layers = new Map<string, LoraLayer>();
    const rng = Rng.derive(this.seed, 'lora', name);
    for (const n of names) {
      const base = this.target.modules.get(n) as TargetableLayer;
      const layer = new LoraLayer(name, base, config.r, scale, config.dropout ?? 0, rng.fork(n), {
        a: config.init ?? 'gaussian',
        b: config.initB ?? 'zero',
        bStd: config.initBStd ?? 0.02,
      });
      base.deltas.push(layer);
      layers.set(n, layer);
    }
    const a = { config, layers };
    this.adapters.set(name, a);
    return a;
  }

  private get(name: string): NamedAdapter {
    const a = this.adapters.get(name);
    if (!a) throw new UserError(`no LoRA adapter named "${name}" (have: ${[...this.adapters.keys()].join(', ') || 'none'})`);
    return a;
  }

  setEnabled(name: string, on: boolean): void {
    for (const l of this.get(name).layers.values()) l.enabled = on;
  }

  setTraining(on: boolean): void {
    for (const a of this.adapters.values()) for (const l of a.layers.values()) l.training = on;
  }

  /** Fold enabled adapters (or the named ones) into the base weights. */
  merge(names?: readonly string[]): void {
    for (const n of names ?? [...this.adapters.keys()]) for (const l of this.get(n).layers.values()) if (l.enabled) l.merge();
  }

  unmerge(): void {
    for (const a of this.adapters.values()) for (const l of a.layers.values()) l.unmerge();
  }

  /** Merge adapter `name` into the base weights and remove it (the merged weights stay). */
  mergeAndUnloadOne(name: string): void {
    for (const l of this.get(name).layers.values()) {
      l.merge();
      l.dispose();
    }
    this.adapters.delete(name);
  }

  /** Merge the enabled adapters into the base weights and remove all adapters. */
  mergeAndUnload(): void {
    this.merge();
    this.dispose();
  }

  trainableVariables(name?: string): tf.Variable[] {
    const list = name ? [this.get(name)] : [...this.adapters.values()];
    return list.flatMap((a) => [...a.layers.values()].flatMap((l) => [l.A, l.B]));
  }

  /** Trainable (adapter) and total (base + adapter) scalar parameter counts. */
  counts(): { trainable: number; total: number } {
    const trainable = this.trainableVariables().reduce((s, v) => s + v.size, 0);
    let base = 0;
    for (const p of this.target.params.values()) base += p.variable.size;
    return { trainable, total: base + trainable };
  }

  /** Write adapter `name` as PEFT does (torch layouts, fp32). */
  save(dir: string, name: string): void {
    const a = this.get(name);
    mkdirSync(dir, { recursive: true });
    const tensors: Record<string, WritableTensor> = {};
    for (const [path, l] of a.layers) {
      const conv = l.base.kind === 'conv';
      const at = tf.tidy(() => (conv ? tf.transpose(l.A, [3, 2, 0, 1]) : tf.transpose(l.A, [1, 0])));
      const bt = tf.tidy(() => (conv ? tf.transpose(l.B, [3, 2, 0, 1]) : tf.transpose(l.B, [1, 0])));
      tensors[`base_model.model.${path}.lora_A.weight`] = { dtype: 'F32', shape: at.shape, data: Float32Array.from(at.dataSync()) };
      tensors[`base_model.model.${path}.lora_B.weight`] = { dtype: 'F32', shape: bt.shape, data: Float32Array.from(bt.dataSync()) };
      tf.dispose([at, bt]);
    }
    writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
    const c = a.config;
    const cfg = {
      peft_type: 'LORA',
      r: c.r,
      lora_alpha: c.alpha,
      lora_dropout: c.dropout ?? 0,
      target_modules: typeof c.targetModules === 'string' ? c.targetModules : [...c.targetModules],
      init_lora_weights: c.init === 'kaiming' ? true : 'gaussian',
      use_rslora: c.useRslora ?? false,
      use_dora: false,
      bias: 'none',
      fan_in_fan_out: false,
      modules_to_save: null,
      rank_pattern: {},
      alpha_pattern: {},
      layers_to_transform: null,
      layers_pattern: null,
      base_model_name_or_path: null,
      task_type: null,
      inference_mode: true,
      revision: null,
    };
    writeFileSync(join(dir, 'adapter_config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  }

  /** Load a PEFT-format adapter folder as adapter `name`. */
  load(dir: string, name: string): NamedAdapter {
    const cfgPath = join(dir, 'adapter_config.json');
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new UserError(`${cfgPath}: cannot read PEFT adapter config (${(e as Error).message})`);
    }
    if (raw.peft_type !== 'LORA') throw new UserError(`${cfgPath}: peft_type ${JSON.stringify(raw.peft_type)} is not LORA`);
    const unsupported: string[] = [];
    if (raw.use_dora) unsupported.push('use_dora');
    if (raw.rank_pattern && Object.keys(raw.rank_pattern).length) unsupported.push('rank_pattern');
    if (raw.alpha_pattern && Object.keys(raw.alpha_pattern).length) unsupported.push('alpha_pattern');
    if (raw.fan_in_fan_out) unsupported.push('fan_in_fan_out');
    if (raw.bias && raw.bias !== 'none') unsupported.push(`bias=${String(raw.bias)}`);
    if (unsupported.length) throw new UserError(`${cfgPath}: unsupported PEFT options ${unsupported.join(', ')}`);
    const config: LoraConfig = {
      r: raw.r as number,
      alpha: raw.lora_alpha as number,
      dropout: (raw.lora_dropout as number) ?? 0,
      targetModules: raw.target_modules as string[] | string,
      init: raw.init_lora_weights === 'gaussian' ? 'gaussian' : 'kaiming',
      useRslora: Boolean(raw.use_rslora),
    };
    const file = join(dir, 'adapter_model.safetensors');
    const tensors = readSafetensors(file).tensors;
    const a = this.add(name, config, cfgPath);
    const problems: string[] = [];
    for (const [path, l] of a.layers) {
      for (const which of ['A', 'B'] as const) {
        const key = `base_model.model.${path}.lora_${which}.weight`;
        const e = tensors.get(key);
        const v = which === 'A' ? l.A : l.B;
        if (!e) {
          problems.push(`missing ${key}`);
          continue;
        }
        const t = tf.tidy(() => {
          const torch = tf.tensor(toFloat32(e), e.shape);
          return l.base.kind === 'conv' ? tf.transpose(torch, [2, 3, 1, 0]) : tf.transpose(torch, [1, 0]);
        });
        if (t.shape.join(',') !== v.shape.join(',')) problems.push(`${key}: shape [${e.shape}] does not fit the module`);
        else v.assign(t);
        t.dispose();
      }
    }
    const known = new Set([...a.layers.keys()].flatMap((p) => [`base_model.model.${p}.lora_A.weight`, `base_model.model.${p}.lora_B.weight`]));
    const extra = [...tensors.keys()].filter((k) => !known.has(k));
    if (extra.length) problems.push(`keys for modules the config does not target: ${extra.slice(0, 5).join(', ')}`);
    if (problems.length) {
      this.remove(name);
      throw new UserError(`${file}: ${problems.slice(0, 8).join('; ')}`);
    }
    return a;
  }

  remove(name: string): void {
    for (const l of this.get(name).layers.values()) {
      l.unmerge();
      l.dispose();
    }
    this.adapters.delete(name);
  }

  /** Remove all adapters (merged weights stay merged). */
  dispose(): void {
    for (const a of this.adapters.values()) for (const l of a.layers.values()) l.dispose();
    this.adapters.clear();
  }
}
