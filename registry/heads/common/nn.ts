import * as tf from '@tensorflow/tfjs-core';
import { Rng, groupNorm, layerNorm, memoryEfficientAttention } from '../../../framework/api.js';

/**
 * Small layer toolkit for the heads (NHWC activations, HWIO conv kernels, [in, out] linear
 * weights). Parameters are tf.Variables registered in a name -> variable map with seeded
 * initialisation, so a head built twice with the same seed is bit-identical.
 */
export class Params {
  readonly map = new Map<string, tf.Variable>();
  constructor(private readonly seed: number) {}

  private add(name: string, shape: number[], values: Float32Array): tf.Variable {
    if (this.map.has(name)) throw new Error(`duplicate parameter ${name}`);
    // tfjs variable names are global: leave them unnamed, the map holds the reference names
    const t = tf.tensor(values, shape);
    const v = tf.variable(t, true);
    t.dispose();
    this.map.set(name, v);
    return v;
  }

  /** Uniform(-b, b) with b = gain * sqrt(6 / (fanIn + fanOut)) (xavier) or sqrt(1/fanIn) (torch default-ish). */
  uniform(name: string, shape: number[], bound: number): tf.Variable {
    const n = shape.reduce((a, b) => a * b, 1);
    return this.add(name, shape, Rng.derive(this.seed, 'param', name).fillUniform(new Float32Array(n), -bound, bound) as Float32Array);
  }

  normal(name: string, shape: number[], std: number): tf.Variable {
    const n = shape.reduce((a, b) => a * b, 1);
    return this.add(name, shape, Rng.derive(this.seed, 'param', name).fillNormal(new Float32Array(n), 0, std) as Float32Array);
  }

  constant(name: string, shape: number[], value: number): tf.Variable {
    return this.add(name, shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value));
  }

  dispose(): void {
    for (const v of this.map.values()) v.dispose();
    this.map.clear();
  }
}

export class Linear {
  readonly w: tf.Variable;
  readonly b: tf.Variable | null;
  constructor(p: Params, name: string, inF: number, outF: number, opts: { bias?: boolean; init?: 'xavier' | 'zeros' } = {}) {
    this.w = opts.init === 'zeros' ? p.constant(`${name}.weight`, [inF, outF], 0) : p.uniform(`${name}.weight`, [inF, outF], Math.sqrt(6 / (inF + outF)));
    this.b = opts.bias === false ? null : p.constant(`${name}.bias`, [outF], 0);
  }

  apply(x: tf.Tensor): tf.Tensor {
    const shape = x.shape;
    const inF = shape[shape.length - 1];
    let y = tf.matMul(tf.reshape(x, [-1, inF]), this.w);
    if (this.b) y = tf.add(y, this.b);
    return tf.reshape(y, [...shape.slice(0, -1), this.w.shape[1] as number]);
  }
}

export class Conv2d {
  readonly stride: number;
  readonly w: tf.Variable;
  readonly b: tf.Variable | null;
  constructor(p: Params, name: string, inC: number, outC: number, readonly k: number, opts: { bias?: boolean; stride?: number } = {}) {
    // kaiming-uniform(a=1) like detectron2's c2_xavier_fill
    this.w = p.uniform(`${name}.weight`, [k, k, inC, outC], Math.sqrt(3 / (k * k * inC)));
    this.b = opts.bias === false ? null : p.constant(`${name}.bias`, [outC], 0);
    this.stride = opts.stride ?? 1;
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    const pad = (this.k - 1) / 2;
    // explicit zero padding + 'valid' (the native TF backend accepts no explicit conv padding)
    const xp = pad === 0 ? x : tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]);
    let y = tf.conv2d(xp, this.w as tf.Tensor4D, this.stride, 'valid');
    if (this.b) y = tf.add(y, this.b);
    return y;
  }
}

export class LayerNorm {
  readonly g: tf.Variable;
  readonly b: tf.Variable;
  constructor(p: Params, name: string, dim: number, readonly eps = 1e-5) {
    this.g = p.constant(`${name}.weight`, [dim], 1);
    this.b = p.constant(`${name}.bias`, [dim], 0);
  }

  /** Fused (framework/engine/fused-ops): keeps only x and the row statistics for backward. */
  apply(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.g, this.b, this.eps);
  }
}

export class GroupNorm {
  readonly g: tf.Variable;
  readonly b: tf.Variable;
  constructor(p: Params, name: string, readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    if (channels % groups !== 0) throw new Error(`GroupNorm ${name}: ${channels} channels not divisible by ${groups} groups`);
    this.g = p.constant(`${name}.weight`, [channels], 1);
    this.b = p.constant(`${name}.bias`, [channels], 0);
  }

  /** Fused (framework/engine/fused-ops): keeps only x and the group statistics for backward. */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return groupNorm(x, this.g, this.b, this.groups, this.eps) as tf.Tensor4D;
  }
}

/** Multi-head attention (torch nn.MultiheadAttention semantics, batch first). mask: additive [N*heads or 1, Lq, Lk]. */
export class MultiHeadAttention {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly out: Linear;
  constructor(p: Params, name: string, readonly dim: number, readonly heads: number) {
    this.q = new Linear(p, `${name}.q_proj`, dim, dim);
    this.k = new Linear(p, `${name}.k_proj`, dim, dim);
    this.v = new Linear(p, `${name}.v_proj`, dim, dim);
    this.out = new Linear(p, `${name}.out_proj`, dim, dim);
  }

  /**
   * Memory-efficient (framework/engine/attention): queries in chunks, probabilities
   * recomputed in the backward pass; the additive mask is indexed [n * heads + m] as torch's.
   */
  apply(query: tf.Tensor3D, key: tf.Tensor3D, value: tf.Tensor3D, mask?: tf.Tensor3D): tf.Tensor3D {
    const o = memoryEfficientAttention(this.q.apply(query), this.k.apply(key), this.v.apply(value), { heads: this.heads, scale: 1 / Math.sqrt(this.dim / this.heads), mask: mask ?? null });
    return this.out.apply(o) as tf.Tensor3D;
  }
}

/** DETR's normalised sine position encoding for an h x w grid: [h*w, dim] (y half, then x half). */
export function sinePositionEmbedding(h: number, w: number, dim: number, temperature = 10000): tf.Tensor2D {
  const half = dim / 2;
  const out = new Float32Array(h * w * dim);
  const scale = 2 * Math.PI;
  const eps = 1e-6;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const ey = ((y + 1) / (h + eps)) * scale;
      const ex = ((x + 1) / (w + eps)) * scale;
      for (let i = 0; i < half; i++) {
        const t = temperature ** ((2 * Math.floor(i / 2)) / half);
        const o = (y * w + x) * dim;
        out[o + i] = i % 2 === 0 ? Math.sin(ey / t) : Math.cos(ey / t);
        out[o + half + i] = i % 2 === 0 ? Math.sin(ex / t) : Math.cos(ex / t);
      }
    }
  }
  return tf.tensor2d(out, [h * w, dim]);
}

/** Bilinear resize with half-pixel centres (torch interpolate(mode='bilinear', align_corners=False)). */
export function resize(x: tf.Tensor4D, h: number, w: number): tf.Tensor4D {
  if (x.shape[1] === h && x.shape[2] === w) return x;
  return tf.image.resizeBilinear(x, [h, w], false, true);
}
