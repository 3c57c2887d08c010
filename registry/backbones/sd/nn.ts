import * as tf from '@tensorflow/tfjs-core';
import type { LayerDelta, TargetableLayer as TargetableLayerContract } from '../../../framework/api.js';
import { Rng, UserError, gelu as fusedGelu, groupNorm, layerNorm, silu as fusedSilu } from '../../../framework/api.js';

/**
 * Building blocks of the Stable-Diffusion-compatible backbones. Each module is a plain
 * class with typed constructor arguments; only the plugins know about configs.
 *
 * Parameters live in one `ParamStore` per model, keyed by diffusers' own state_dict names
 * (`down_blocks.0.resnets.0.conv1.weight`), so weight loading, saving and LoRA targeting
 * are all "by name". Tensors are kept in tfjs layouts (NHWC activations, HWIO conv
 * kernels, [in, out] linear weights); `layout` records how to convert to/from torch's.
 */
export type ParamLayout = 'linear' | 'conv' | 'plain';

export interface MemoryOptions {
  attentionChunk: number;
  checkpoint: 'none' | 'blocks';
}

export interface ParamInfo {
  variable: tf.Variable;
  layout: ParamLayout;
  /** The torch shape (what a diffusers safetensors file holds). */
  torchShape: number[];
}

export class ParamStore {
  readonly params = new Map<string, ParamInfo>();
  /** LoRA-targetable layers (Linear, Conv2d) by module name. */
  readonly modules = new Map<string, TargetableLayer>();
  /**
   * `shapesOnly`: record names and shapes without allocating (every parameter shares one
   * scalar placeholder): lets tests check a full-size architecture's state_dict cheaply.
   */
  constructor(readonly rng: Rng, readonly shapesOnly = false) {}
  /**
   * How the model spends memory, read by its modules at every forward (so the plugin can set
   * it after construction): queries per attention chunk (0: automatic) and whether each
   * ResNet/transformer block recomputes its forward in the backward pass instead of keeping it.
   */
  readonly memory: MemoryOptions = { attentionChunk: 0, checkpoint: 'none' };

  /**
   * Variables a gradient may target inside module `prefix`: adapter deltas' variables on its
   * layers and the parameters marked trainable (what a checkpointed block passes gradients to).
   */
  gradientVariables(prefix: string): tf.Variable[] {
    const under = (name: string) => name.startsWith(`${prefix}.`);
    const out: tf.Variable[] = [];
    for (const [name, m] of this.modules) if (under(name)) for (const d of m.deltas) out.push(...(d.trainableVariables?.() ?? []));
    for (const name of this.trainable) if (under(name)) out.push((this.params.get(name) as ParamInfo).variable);
    return out;
  }
  private placeholder: tf.Variable | null = null;

  add(name: string, layout: ParamLayout, torchShape: number[], init: (n: number) => Float32Array): tf.Variable {
    if (this.params.has(name)) throw new Error(`duplicate parameter name ${name}`);
    if (this.shapesOnly) {
      this.placeholder ??= tf.variable(tf.scalar(0), false, `shapes-only#${variableSerial++}`);
      this.params.set(name, { variable: this.placeholder, layout, torchShape });
      return this.placeholder;
    }
    const n = torchShape.reduce((a, d) => a * d, 1);
    const values = init(n);
    const variable = tf.tidy(() => tf.variable(fromTorch(tf.tensor(values, torchShape), layout), true, `${name}#${variableSerial++}`));
    this.params.set(name, { variable, layout, torchShape });
    return variable;
  }

  /** Names of parameters a training step may update besides adapters (`trainable` option). */
  readonly trainable = new Set<string>();

  /** Mark parameters whose names fully match one of `patterns` (regexes) trainable; a pattern matching nothing is an error. */
  markTrainable(patterns: readonly string[], where: string): void {
    for (const p of patterns) {
      const re = new RegExp(`^(?:${p})$`);
      const hit = [...this.params.keys()].filter((n) => re.test(n));
      if (!hit.length) throw new UserError(`${where}: trainable pattern ${JSON.stringify(p)} matches no parameter (names look like ${[...this.params.keys()].slice(0, 2).join(', ')})`);
      for (const h of hit) this.trainable.add(h);
    }
  }

  trainableVariables(): tf.Variable[] {
    return [...this.trainable].map((n) => (this.params.get(n) as ParamInfo).variable);
  }

  /** Total number of scalar parameters. */
  count(filter?: (name: string, p: ParamInfo) => boolean): number {
    let n = 0;
    for (const [k, p] of this.params) if (!filter || filter(k, p)) n += p.torchShape.reduce((a, d) => a * d, 1);
    return n;
  }

  dispose(): void {
    for (const p of this.params.values()) if (!p.variable.isDisposed) p.variable.dispose();
    this.params.clear();
  }
}

let variableSerial = 0;

/** torch layout -> tfjs layout. */
export function fromTorch(t: tf.Tensor, layout: ParamLayout): tf.Tensor {
  if (layout === 'linear') return tf.transpose(t, [1, 0]);
  if (layout === 'conv') return tf.transpose(t, [2, 3, 1, 0]);
  return t;
}

/** tfjs layout -> torch layout. */
export function toTorch(t: tf.Tensor, layout: ParamLayout): tf.Tensor {
  if (layout === 'linear') return tf.transpose(t, [1, 0]);
  if (layout === 'conv') return tf.transpose(t, [3, 2, 0, 1]);
  return t;
}

/** A scope: the store plus the dotted prefix of the module being built. */
export class Scope {
  constructor(readonly store: ParamStore, readonly prefix: string) {}
  child(name: string | number): Scope {
    return new Scope(this.store, this.prefix ? `${this.prefix}.${name}` : String(name));
  }
  name(leaf: string): string {
    return this.prefix ? `${this.prefix}.${leaf}` : leaf;
  }
}

/** Torch's default init for Linear/Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
function uniformFanIn(rng: Rng, fanIn: number): (n: number) => Float32Array {
  const b = 1 / Math.sqrt(fanIn);
  return (n) => rng.fillUniform(new Float32Array(n), -b, b) as Float32Array;
}
const constant = (v: number) => (n: number) => new Float32Array(n).fill(v);

/** A hook a LoRA adapter installs on a Linear/Conv2d (see framework/contracts/backbone.ts). */
export type { LayerDelta };

/** Linear and Conv2d are the LoRA-targetable layers. */
export abstract class TargetableLayer implements TargetableLayerContract {
  readonly deltas: LayerDelta[] = [];
  abstract readonly kind: 'linear' | 'conv';
  abstract readonly weight: tf.Variable;
  readonly path: string;
  constructor(scope: Scope) {
    this.path = scope.prefix;
    scope.store.modules.set(scope.prefix, this);
  }
  protected addDeltas(x: tf.Tensor, y: tf.Tensor): tf.Tensor {
    let out = y;
    for (const d of this.deltas) {
      const dy = d.delta(x);
      if (dy) out = tf.add(out, dy);
    }
    return out;
  }
}

export class Linear extends TargetableLayer {
  readonly kind = 'linear' as const;
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  constructor(scope: Scope, readonly inFeatures: number, readonly outFeatures: number, bias = true) {
    super(scope);
    const init = uniformFanIn(scope.store.rng.fork(scope.prefix), inFeatures);
    this.weight = scope.store.add(scope.name('weight'), 'linear', [outFeatures, inFeatures], init);
    this.bias = bias ? scope.store.add(scope.name('bias'), 'plain', [outFeatures], init) : null;
  }
  /** x: [..., in] -> [..., out]. */
  forward(x: tf.Tensor): tf.Tensor {
    return this.addDeltas(x, linear(x, this.weight, this.bias));
  }
}

export function linear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null): tf.Tensor {
  const shape = x.shape;
  const x2 = tf.reshape(x, [-1, shape[shape.length - 1] as number]) as tf.Tensor2D;
  let y: tf.Tensor = tf.matMul(x2, w as tf.Tensor2D);
  if (b) y = tf.add(y, b);
  return tf.reshape(y, [...shape.slice(0, -1), w.shape[1] as number]);
}

export class Conv2d extends TargetableLayer {
  readonly kind = 'conv' as const;
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  constructor(
    scope: Scope,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    readonly stride = 1,
    readonly padding = 0,
    bias = true,
  ) {
    super(scope);
    const init = uniformFanIn(scope.store.rng.fork(scope.prefix), inChannels * kernel * kernel);
    this.weight = scope.store.add(scope.name('weight'), 'conv', [outChannels, inChannels, kernel, kernel], init);
    this.bias = bias ? scope.store.add(scope.name('bias'), 'plain', [outChannels], init) : null;
  }
  /** x: NHWC. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return this.addDeltas(x, conv2d(x, this.weight as tf.Tensor4D, this.bias, this.stride, this.padding)) as tf.Tensor4D;
  }
}

/** Conv with torch's symmetric integer padding (tfjs 'same' pads asymmetrically for stride 2). */
export function conv2d(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor | null, stride: number, padding: number): tf.Tensor4D {
  const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [padding, padding], [padding, padding], [0, 0]];
  let y = tf.conv2d(x, w, stride, padding === 0 ? 'valid' : pad);
  if (b) y = tf.add(y, b);
  return y;
}

export class GroupNorm {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(scope: Scope, readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    if (channels % groups !== 0) throw new Error(`${scope.prefix}: GroupNorm channels ${channels} not divisible by groups ${groups}`);
    this.weight = scope.store.add(scope.name('weight'), 'plain', [channels], constant(1));
    this.bias = scope.store.add(scope.name('bias'), 'plain', [channels], constant(0));
  }
  /** x: NHWC (or [B, N, C]: treated as N positions). Fused: keeps only x and the group statistics for backward. */
  forward(x: tf.Tensor): tf.Tensor {
    return groupNorm(x, this.weight, this.bias, this.groups, this.eps);
  }
}

export class LayerNorm {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(scope: Scope, readonly dim: number, readonly eps = 1e-5) {
    this.weight = scope.store.add(scope.name('weight'), 'plain', [dim], constant(1));
    this.bias = scope.store.add(scope.name('bias'), 'plain', [dim], constant(0));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class Embedding {
  readonly weight: tf.Variable;
  constructor(scope: Scope, readonly num: number, readonly dim: number) {
    const rng = scope.store.rng.fork(scope.prefix);
    this.weight = scope.store.add(scope.name('weight'), 'plain', [num, dim], (n) => rng.fillNormal(new Float32Array(n), 0, 0.02) as Float32Array);
  }
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.gather(this.weight, tf.cast(ids, 'int32'));
  }
}

/** SiLU and exact (erf) GELU as torch's defaults, with fused gradients (framework/engine/fused-ops). */
export const silu = fusedSilu;
export const gelu = fusedGelu;
export const quickGelu = (x: tf.Tensor): tf.Tensor => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)));

/** torch's Mish: x * tanh(softplus(x)). */
export const mish = (x: tf.Tensor): tf.Tensor => tf.mul(x, tf.tanh(tf.softplus(x)));

export function activation(name: string): (x: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'silu':
    case 'swish':
      return silu;
    case 'gelu':
      return gelu;
    case 'quick_gelu':
      return quickGelu;
    case 'relu':
      return tf.relu;
    case 'mish':
      return mish;
    default:
      throw new Error(`unsupported activation "${name}"`);
  }
}

/** Nearest-neighbour 2x upsampling on NHWC (torch F.interpolate(mode='nearest')). */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  // two rank-4 tiles (tfjs has Tile gradients only up to rank 4): width, then height
  const wide = tf.reshape(tf.tile(tf.reshape(x, [b * h, w, 1, c]), [1, 1, 2, 1]), [b, h, 1, 2 * w * c]);
  return tf.reshape(tf.tile(wide, [1, 1, 2, 1]), [b, h * 2, w * 2, c]) as tf.Tensor4D;
}
