import * as tf from '@tensorflow/tfjs-core';
import type { LayerDelta, ParameterHolder, TargetableLayer } from '../../../framework/api.js';
import { Rng, UserError, type WritableTensor } from '../../../framework/api.js';
import { fromTorchLayout, loraKey, readPeftAdapter, savedParamKey, toTorchLayout, writePeftAdapter } from './peft-format.js';

/**
 * LoRA with PEFT's semantics (peft 0.21). A wrapped layer computes
 *   y = base(x) + scale * (B(A(dropout(x))) + b),  scale = alpha / r  (alpha / sqrt(r) with rsLoRA);
 * b only with lora_bias. For a conv base, A is a conv with the base kernel/stride/padding and B
 * a 1x1 conv (as PEFT). Target selection follows peft's check_target_module_exists (see
 * selectTargets). modules_to_save: whole modules the adapter owns a trained copy of.
 * The file format lives in peft-format.ts.
 */
export type LoraInit = 'gaussian' | 'kaiming';

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout?: number;
  targetModules: readonly string[] | string;
  /** PEFT exclude_modules: a list (equal name or dotted suffix) or a full-match regex; never wrapped. */
  excludeModules?: readonly string[] | string;
  /** A's init: `gaussian` N(0, 1/r) (PEFT "gaussian", OSEDiff), `kaiming` (PEFT's default). */
  init?: LoraInit;
  /** B's init: `zero` (PEFT: the adapter starts as a no-op) or `gaussian` (std `initBStd`, for tests). */
  initB?: 'zero' | 'gaussian';
  initBStd?: number;
  useRslora?: boolean;
  /** PEFT modules_to_save: modules (any module name ending in the entry) saved and loaded whole with the adapter. */
  modulesToSave?: readonly string[];
  /** PEFT layers_to_transform / layers_pattern: keep list targets only in these layer indices. */
  layersToTransform?: number | readonly number[];
  layersPattern?: string | readonly string[];
  /** PEFT rank_pattern / alpha_pattern: per-module r and alpha (key: regex matching a dotted suffix). */
  rankPattern?: Readonly<Record<string, number>>;
  alphaPattern?: Readonly<Record<string, number>>;
  /** PEFT lora_bias: B has a bias (merging needs a base bias). */
  loraBias?: boolean;
}

function fullRegex(pattern: string, where: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw new UserError(`${where}: invalid regex ${JSON.stringify(pattern)} (${(e as Error).message})`);
  }
}

/** Module names (of `names`) selected by PEFT-style targets; an entry that selects nothing is an error. */
export function matchTargets(names: readonly string[], targets: readonly string[] | string, where = 'target_modules'): string[] {
  if (typeof targets === 'string') {
    const re = fullRegex(targets, where);
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

/** The layer index peft reads from a module name for layers_to_transform (the first numbered segment after `pattern`). */
function layerIndex(name: string, pattern: string | readonly string[] | undefined): number | null {
  const patterns = pattern === undefined || pattern.length === 0 ? [null] : typeof pattern === 'string' ? [pattern] : pattern;
  for (const p of patterns) {
    // lazy prefixes as peft: the first index, not a nested one; the pattern is a regex there too (unescaped)
    const m = (p === null ? /^.*?\.[^.]*\.(\d+)\./ : new RegExp(`^(?:.*?\\.)?${p}\\.(\\d+)\\.`)).exec(name);
    if (m) return Number(m[1]);
  }
  return null;
}

/**
 * The modules an adapter wraps, as peft's check_target_module_exists: exclude_modules first,
 * then modules inside modules_to_save are never wrapped, then target_modules (a regex string:
 * full match; a list: equal name, or dotted suffix filtered by layers_to_transform).
 */
export function selectTargets(names: readonly string[], c: LoraConfig, where = 'lora'): string[] {
  const candidates = new Set(matchTargets(names, c.targetModules, `${where}.target_modules`));
  const ex = c.excludeModules;
  const exRe = typeof ex === 'string' ? fullRegex(ex, `${where}.exclude_modules`) : null;
  const saveRes = (c.modulesToSave ?? []).map((m) => new RegExp(`^(?:.*\\.)?${m}(?:$|\\..*)`));
  const layers = c.layersToTransform;
  const useLayers = layers !== undefined && (typeof layers === 'number' || layers.length > 0) && typeof c.targetModules !== 'string';
  const out = names.filter((n) => {
    if (!candidates.has(n)) return false;
    if (exRe ? exRe.test(n) : ex && (ex as readonly string[]).some((e) => n === e || n.endsWith(`.${e}`))) return false;
    if (saveRes.some((re) => re.test(n))) return false;
    if (useLayers && !(c.targetModules as readonly string[]).includes(n)) {
      const i = layerIndex(n, c.layersPattern);
      if (i === null || !(typeof layers === 'number' ? i === layers : (layers as readonly number[]).includes(i))) return false;
    }
    return true;
  });
  if (!out.length) throw new UserError(`${where}: target_modules select no module once exclude_modules, modules_to_save and layers_to_transform are applied`);
  return out;
}

/** peft's get_pattern_key: the first pattern key matching a dotted suffix of `name`. */
function patternValue(pattern: Readonly<Record<string, number>> | undefined, name: string, where: string): number | undefined {
  for (const [k, v] of Object.entries(pattern ?? {})) {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:.*\\.)?(?:${k})$`);
    } catch (e) {
      throw new UserError(`${where}: invalid pattern ${JSON.stringify(k)} (${(e as Error).message})`);
    }
    if (re.test(name)) return v;
  }
  return undefined;
}

/** The parameters modules_to_save covers (peft: every module whose name ends with an entry, with all its parameters). */
export function savedParams(target: ParameterHolder, modules: readonly string[], where: string): { param: string; layout: 'linear' | 'conv' | 'plain' }[] {
  const moduleNames = new Set<string>();
  for (const p of target.params.keys()) {
    const parts = p.split('.');
    for (let i = 1; i < parts.length; i++) moduleNames.add(parts.slice(0, i).join('.'));
  }
  const hit = new Set<string>();
  for (const m of modules) {
    const found = [...moduleNames].filter((n) => n.endsWith(m));
    if (!found.length) throw new UserError(`${where}.modules_to_save: ${JSON.stringify(m)} matches no module with parameters`);
    for (const f of found) hit.add(f);
  }
  // a module inside another matched one is covered by it
  const top = [...hit].filter((m) => ![...hit].some((o) => o !== m && m.startsWith(`${o}.`)));
  const out: { param: string; layout: 'linear' | 'conv' | 'plain' }[] = [];
  for (const [p, { variable }] of target.params) {
    const owner = top.find((m) => p.startsWith(`${m}.`));
    if (!owner) continue;
    const layer = target.modules.get(p.slice(0, p.lastIndexOf('.')));
    // the torch layout is known for a Linear/Conv2d weight and for 1-D parameters; nothing else is needed yet
    const layout = layer && p.endsWith('.weight') ? layer.kind : variable.rank === 1 ? 'plain' : null;
    if (!layout) throw new UserError(`${where}.modules_to_save: ${owner} holds ${p}, whose torch layout this implementation does not know`);
    out.push({ param: p, layout });
  }
  return out;
}

export class LoraLayer implements LayerDelta {
  /** tfjs layouts: linear A [in, r], B [r, out]; conv A [k, k, in, r], B [1, 1, r, out]; bias [out]. */
  readonly A: tf.Variable;
  readonly B: tf.Variable;
  readonly bias: tf.Variable | null;
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
    init: { a: LoraInit; b: 'zero' | 'gaussian'; bStd: number; bias: boolean },
    /** The base layer's bias (lora_bias merges into it), if it has one. */
    private readonly baseBias: tf.Variable | null = null,
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
    const out = bShape[bShape.length - 1] as number;
    const biasVals = new Float32Array(out);
    if (init.bias && init.b === 'gaussian') rng.fork('bias').fillNormal(biasVals, 0, init.bStd);
    // tfjs variable names must be unique per process: readable (gradients are looked up by them
    // in tests and logs) plus the id tfjs gave the initial tensor, unique without a counter of ours
    // (tf.variable copies its initial value: the temporary is disposed, or it would outlive the adapter)
    const named = (what: string, t: tf.Tensor) => {
      const v = tf.variable(t, true, `${what}:${adapter}/${base.path}#${t.id}`);
      t.dispose();
      return v;
    };
    this.A = named('lora_A', tf.tensor(aVals, aShape));
    this.B = named('lora_B', tf.tensor(bVals, bShape));
    this.bias = init.bias ? named('lora_B.bias', tf.tensor1d(biasVals)) : null;
  }

  trainableVariables(): readonly tf.Variable[] {
    return this.bias ? [this.A, this.B, this.bias] : [this.A, this.B];
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
    if (this.bias) y = tf.add(y, this.bias); // channels last: broadcasts over the last axis
    // alpha = r (scale 1) is the common setting: a multiply by 1 is exact, and skipping it
    // saves a pass over the layer's output each way
    return this.scale === 1 ? y : tf.mul(y, this.scale);
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

  /** @internal merge would refuse (checked for every layer before any is merged) */
  checkBias(): void {
    // as peft: a LoRA bias can only be folded into a base layer that has a bias
    if (this.bias && !this.baseBias) throw new UserError(`LoRA "${this.adapter}" on ${this.base.path}: cannot merge with lora_bias because the base layer has no bias`);
  }

  merge(): void {
    if (this.merged) return;
    this.checkBias();
    tf.tidy(() => {
      this.base.weight.assign(tf.add(this.base.weight, this.deltaWeight()));
      if (this.bias && this.baseBias) this.baseBias.assign(tf.add(this.baseBias, tf.mul(this.bias, this.scale)));
    });
    this.merged = true;
  }

  unmerge(): void {
    if (!this.merged) return;
    tf.tidy(() => {
      this.base.weight.assign(tf.sub(this.base.weight, this.deltaWeight()));
      if (this.bias && this.baseBias) this.baseBias.assign(tf.sub(this.baseBias, tf.mul(this.bias, this.scale)));
    });
    this.merged = false;
  }

  dispose(): void {
    const i = this.base.deltas.indexOf(this);
    if (i >= 0) this.base.deltas.splice(i, 1);
    this.A.dispose();
    this.B.dispose();
    this.bias?.dispose();
  }
}

/**
 * A base parameter inside a modules_to_save module. peft keeps a per-adapter copy of the
 * module; here the base variable holds the adapter's copy while the adapter is enabled, and
 * `original` the values it replaced (restored when the adapter is disabled or removed).
 */
interface SavedParam {
  variable: tf.Variable;
  layout: 'linear' | 'conv' | 'plain';
  original: tf.Tensor;
  /** the adapter's values while it is disabled */
  stash: tf.Tensor | null;
}

interface NamedAdapter {
  config: LoraConfig;
  layers: Map<string, LoraLayer>;
  /** modules_to_save parameters by name */
  saved: Map<string, SavedParam>;
}

/**
 * Several named LoRA adapters on one backbone. Adapters can be enabled/disabled, merged
 * into the base weights and unmerged, or merged and unloaded; saved and loaded in PEFT's
 * format (peft-format.ts).
 */
export class LoraModel {
  readonly adapters = new Map<string, NamedAdapter>();
  constructor(readonly target: ParameterHolder, private readonly seed = 0) {}

  add(name: string, config: LoraConfig, where = 'lora'): NamedAdapter {
    if (this.adapters.has(name)) throw new UserError(`${where}: adapter "${name}" already exists`);
    if (!(Number.isInteger(config.r) && config.r > 0)) throw new UserError(`${where}.r: rank must be a positive integer (got ${config.r})`);
    const names = selectTargets([...this.target.modules.keys()], config, where);
    // everything that can be refused is checked before anything is created, so a refused adapter
    // leaves no half-built layers or copies behind
    const ranks = new Map(names.map((n) => [n, {
      r: patternValue(config.rankPattern, n, `${where}.rank_pattern`) ?? config.r,
      alpha: patternValue(config.alphaPattern, n, `${where}.alpha_pattern`) ?? config.alpha,
    }]));
    const toSave = config.modulesToSave?.length ? savedParams(this.target, config.modulesToSave, where) : [];
    for (const { param } of toSave) {
      const other = [...this.adapters].find(([, a]) => a.saved.has(param));
      if (other) throw new UserError(`${where}.modules_to_save: ${param} is already saved by adapter "${other[0]}"`);
    }
    const saved = new Map<string, SavedParam>();
    for (const { param, layout } of toSave) {
      const variable = (this.target.params.get(param) as { variable: tf.Variable }).variable;
      saved.set(param, { variable, layout, original: tf.clone(variable), stash: null });
    }
    const layers = new Map<string, LoraLayer>();
    const rng = Rng.derive(this.seed, 'lora', name);
    for (const n of names) {
      const base = this.target.modules.get(n) as TargetableLayer;
      const { r, alpha } = ranks.get(n) as { r: number; alpha: number };
      const scale = config.useRslora ? alpha / Math.sqrt(r) : alpha / r;
      const layer = new LoraLayer(
        name,
        base,
        r,
        scale,
        config.dropout ?? 0,
        rng.fork(n),
        { a: config.init ?? 'gaussian', b: config.initB ?? 'zero', bStd: config.initBStd ?? 0.02, bias: config.loraBias ?? false },
        this.target.params.get(`${n}.bias`)?.variable ?? null,
      );
      base.deltas.push(layer);
      layers.set(n, layer);
    }
    const a = { config, layers, saved };
    this.adapters.set(name, a);
    return a;
  }

  private get(name: string): NamedAdapter {
    const a = this.adapters.get(name);
    if (!a) throw new UserError(`no LoRA adapter named "${name}" (have: ${[...this.adapters.keys()].join(', ') || 'none'})`);
    return a;
  }

  setEnabled(name: string, on: boolean): void {
    const a = this.get(name);
    for (const l of a.layers.values()) l.enabled = on;
    for (const s of a.saved.values()) {
      if (on && s.stash) {
        s.variable.assign(s.stash);
        s.stash.dispose();
        s.stash = null;
      } else if (!on && !s.stash) {
        s.stash = tf.clone(s.variable);
        s.variable.assign(s.original);
      }
    }
  }

  setTraining(on: boolean): void {
    for (const a of this.adapters.values()) for (const l of a.layers.values()) l.training = on;
  }

  /** Fold enabled adapters (or the named ones) into the base weights. */
  merge(names?: readonly string[]): void {
    const layers = (names ?? [...this.adapters.keys()]).flatMap((n) => [...this.get(n).layers.values()].filter((l) => l.enabled));
    for (const l of layers) l.checkBias(); // all or nothing: no half-merged model
    for (const l of layers) l.merge();
  }

  unmerge(): void {
    for (const a of this.adapters.values()) for (const l of a.layers.values()) l.unmerge();
  }

  /** Merge adapter `name` into the base weights and remove it (the merged weights and its saved modules stay). */
  mergeAndUnloadOne(name: string): void {
    const a = this.get(name);
    for (const l of a.layers.values()) if (!l.merged) l.checkBias(); // before anything is merged or disposed
    if (a.saved.size) this.setEnabled(name, true);
    for (const l of a.layers.values()) {
      l.merge();
      l.dispose();
    }
    this.drop(a, false);
    this.adapters.delete(name);
  }

  /** Merge the enabled adapters into the base weights and remove all adapters. */
  mergeAndUnload(): void {
    this.merge();
    this.dispose();
  }

  /** LoRA factors (and biases) plus the modules_to_save parameters the adapter owns. */
  trainableVariables(name?: string): tf.Variable[] {
    const list = name ? [this.get(name)] : [...this.adapters.values()];
    return list.flatMap((a) => [...[...a.layers.values()].flatMap((l) => l.trainableVariables()), ...[...a.saved.values()].map((s) => s.variable)]);
  }

  /** Trainable (adapter) and total (base + adapter) scalar parameter counts. */
  counts(): { trainable: number; total: number } {
    const trainable = this.trainableVariables().reduce((s, v) => s + v.size, 0);
    let base = 0;
    for (const p of this.target.params.values()) base += p.variable.size;
    let savedSize = 0; // modules_to_save parameters are base parameters: count them once
    for (const a of this.adapters.values()) for (const s of a.saved.values()) savedSize += s.variable.size;
    return { trainable, total: base + trainable - savedSize };
  }

  /**
   * Write adapter `name` as PEFT does (torch layouts, fp32). `modulesToSave` adds modules
   * trained outside the adapter (e.g. a backbone's conv_in) to the file as PEFT modules_to_save.
   * peft never wraps a modules_to_save module, so where this adapter also has a LoRA layer on
   * such a module the saved copy is the merged weight (W + scale B A, bias + scale b): the same
   * function, in the form peft and `load` read.
   */
  save(dir: string, name: string, opts: { modulesToSave?: readonly string[] } = {}): void {
    const a = this.get(name);
    const tensors: Record<string, WritableTensor> = {};
    const extra = (opts.modulesToSave ?? []).filter((m) => !(a.config.modulesToSave ?? []).includes(m));
    for (const [param, s] of a.saved) tensors[savedParamKey(param)] = toTorchLayout(s.stash ?? s.variable, s.layout);
    for (const { param, layout } of extra.length ? savedParams(this.target, extra, `adapter "${name}"`) : []) {
      const v = (this.target.params.get(param) as { variable: tf.Variable }).variable;
      const leaf = param.slice(param.lastIndexOf('.') + 1);
      const l = a.layers.get(param.slice(0, param.lastIndexOf('.')));
      const active = l && l.enabled && !l.merged; // a merged or disabled layer adds nothing to W
      if (active && leaf === 'weight') {
        const w = tf.tidy(() => tf.add(v, l.deltaWeight()));
        tensors[savedParamKey(param)] = toTorchLayout(w, layout);
        w.dispose();
      } else if (active && leaf === 'bias' && l.bias) {
        const b = tf.tidy(() => tf.add(v, tf.mul(l.bias as tf.Variable, l.scale)));
        tensors[savedParamKey(param)] = toTorchLayout(b, layout);
        b.dispose();
      } else tensors[savedParamKey(param)] = toTorchLayout(v, layout);
    }
    for (const [path, l] of a.layers) {
      if (savedParamKey(`${path}.weight`) in tensors) continue; // folded into the saved copy above
      tensors[loraKey(path, 'A')] = toTorchLayout(l.A, l.base.kind);
      tensors[loraKey(path, 'B')] = toTorchLayout(l.B, l.base.kind);
      if (l.bias) tensors[loraKey(path, 'B', 'bias')] = toTorchLayout(l.bias, 'plain');
    }
    const config: LoraConfig = extra.length ? { ...a.config, modulesToSave: [...(a.config.modulesToSave ?? []), ...extra] } : a.config;
    writePeftAdapter(dir, config, tensors);
  }

  /** Load a PEFT-format adapter folder as adapter `name` (modules_to_save values replace the base ones while it is enabled). */
  load(dir: string, name: string): NamedAdapter {
    const { config, configPath, file, tensors } = readPeftAdapter(dir);
    const a = this.add(name, config, configPath);
    const problems: string[] = [];
    const known = new Set<string>();
    const put = (key: string, v: tf.Variable, kind: 'linear' | 'conv' | 'plain') => {
      known.add(key);
      const e = tensors.get(key);
      if (!e) {
        problems.push(`missing ${key}`);
        return;
      }
      const t = fromTorchLayout(e, kind);
      if (t.shape.join(',') !== v.shape.join(',')) problems.push(`${key}: shape [${e.shape}] does not fit the module`);
      else v.assign(t);
      t.dispose();
    };
    for (const [path, l] of a.layers) {
      put(loraKey(path, 'A'), l.A, l.base.kind);
      put(loraKey(path, 'B'), l.B, l.base.kind);
      if (l.bias) put(loraKey(path, 'B', 'bias'), l.bias, 'plain');
    }
    for (const [param, s] of a.saved) put(savedParamKey(param), s.variable, s.layout);
    const extra = [...tensors.keys()].filter((k) => !known.has(k));
    if (extra.length) problems.push(`keys for modules the config does not target: ${extra.slice(0, 5).join(', ')}`);
    if (problems.length) {
      this.remove(name);
      throw new UserError(`${file}: ${problems.slice(0, 8).join('; ')} (config ${configPath})`);
    }
    return a;
  }

  /** Release a removed adapter's saved-module copies; `restore`: put the base values back. */
  private drop(a: NamedAdapter, restore: boolean): void {
    for (const s of a.saved.values()) {
      if (restore && !s.stash) s.variable.assign(s.original);
      if (!restore && s.stash) s.variable.assign(s.stash);
      s.original.dispose();
      s.stash?.dispose();
    }
    a.saved.clear();
  }

  remove(name: string): void {
    const a = this.get(name);
    for (const l of a.layers.values()) {
      l.unmerge();
      l.dispose();
    }
    this.drop(a, true);
    this.adapters.delete(name);
  }

  /** Remove all adapters (merged weights stay merged; an enabled adapter's saved modules keep its values). */
  dispose(): void {
    for (const a of this.adapters.values()) {
      for (const l of a.layers.values()) l.dispose();
      for (const s of a.saved.values()) {
        s.original.dispose();
        s.stash?.dispose();
      }
      a.saved.clear();
    }
    this.adapters.clear();
  }
}
