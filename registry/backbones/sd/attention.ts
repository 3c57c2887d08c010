import * as tf from '@tensorflow/tfjs-core';
import { geglu, memoryEfficientAttention, plainAttention, recomputed } from '../../../framework/api.js';
import { Conv2d, GroupNorm, LayerNorm, Linear, type MemoryOptions, type Scope } from './nn.js';
import { NO_RECORD, type Recorder } from './taps.js';

/**
 * diffusers' `Attention`: to_q/to_k/to_v/to_out.0, `heads` heads of `dimHead`, scaled
 * dot-product. Optionally with a group norm and residual (the VAE mid-block form).
 */
export class Attention {
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: Linear;
  readonly groupNorm: GroupNorm | null;
  constructor(
    scope: Scope,
    opts: { queryDim: number; crossDim?: number; heads: number; dimHead: number; bias?: boolean; outBias?: boolean; normGroups?: number; eps?: number; residual?: boolean },
    readonly path = scope.prefix,
  ) {
    this.memory = scope.store.memory;
    const inner = opts.heads * opts.dimHead;
    this.heads = opts.heads;
    this.dimHead = opts.dimHead;
    this.residual = opts.residual ?? false;
    this.groupNorm = opts.normGroups ? new GroupNorm(scope.child('group_norm'), opts.normGroups, opts.queryDim, opts.eps ?? 1e-5) : null;
    this.toQ = new Linear(scope.child('to_q'), opts.queryDim, inner, opts.bias ?? false);
    this.toK = new Linear(scope.child('to_k'), opts.crossDim ?? opts.queryDim, inner, opts.bias ?? false);
    this.toV = new Linear(scope.child('to_v'), opts.crossDim ?? opts.queryDim, inner, opts.bias ?? false);
    this.toOut = new Linear(scope.child('to_out').child(0), inner, opts.queryDim, opts.outBias ?? true);
  }
  readonly heads: number;
  readonly dimHead: number;
  readonly residual: boolean;
  private readonly memory: MemoryOptions;

  /** x: [B, N, C] (or NHWC when used spatially), context: [B, M, Cc]. */
  forward(x: tf.Tensor, context: tf.Tensor | null, rec: Recorder): tf.Tensor {
    const spatial = x.rank === 4;
    const shape = x.shape;
    let h = x;
    if (this.groupNorm) h = this.groupNorm.forward(h);
    if (spatial) h = tf.reshape(h, [shape[0] as number, (shape[1] as number) * (shape[2] as number), shape[3] as number]);
    const ctx = context ?? h;
    const q = this.toQ.forward(h);
    const k = this.toK.forward(ctx);
    const v = this.toV.forward(ctx);
    const opts = { heads: this.heads, chunk: this.memory.attentionChunk };
    // A captured layer materialises its probabilities as ordinary ops, so losses on the map
    // (SCL trains cross-attention LoRA through it) get gradients; every other layer keeps
    // nothing quadratic in the token count.
    const o = rec.wantsAttention(this.path)
      ? plainAttention(q, k, v, opts, (p) => rec.attn(this.path, tf.reshape(p, [q.shape[0] as number, this.heads, p.shape[1], p.shape[2]])))
      : memoryEfficientAttention(q, k, v, opts);
    const [b, n] = h.shape;
    let out = this.toOut.forward(tf.reshape(o, [b as number, n as number, this.heads * this.dimHead]));
    if (spatial) out = tf.reshape(out, shape);
    if (this.residual) out = tf.add(out, x);
    return out;
  }
}

/** GEGLU feed-forward (`ff.net.0.proj` -> value * gelu(gate) -> `ff.net.2`). */
export class FeedForward {
  readonly proj: Linear;
  readonly out: Linear;
  constructor(scope: Scope, dim: number, mult = 4) {
    const inner = dim * mult;
    this.proj = new Linear(scope.child('net').child(0).child('proj'), dim, inner * 2);
    this.out = new Linear(scope.child('net').child(2), inner, dim);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return this.out.forward(geglu(this.proj.forward(x)));
  }
}

export class BasicTransformerBlock {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm;
  readonly attn2: Attention;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;
  /** `onlyCross`: diffusers' only_cross_attention, where attn1 also attends to the context instead of itself. */
  constructor(scope: Scope, dim: number, heads: number, dimHead: number, crossDim: number, attentionBias: boolean, readonly onlyCross = false) {
    this.norm1 = new LayerNorm(scope.child('norm1'), dim);
    this.attn1 = new Attention(scope.child('attn1'), { queryDim: dim, crossDim: onlyCross ? crossDim : undefined, heads, dimHead, bias: attentionBias });
    this.norm2 = new LayerNorm(scope.child('norm2'), dim);
    this.attn2 = new Attention(scope.child('attn2'), { queryDim: dim, crossDim, heads, dimHead, bias: attentionBias });
    this.norm3 = new LayerNorm(scope.child('norm3'), dim);
    this.ff = new FeedForward(scope.child('ff'), dim);
  }
  forward(x: tf.Tensor, context: tf.Tensor, rec: Recorder): tf.Tensor {
    let h = tf.add(this.attn1.forward(this.norm1.forward(x), this.onlyCross ? context : null, rec), x);
    h = tf.add(this.attn2.forward(this.norm2.forward(h), context, rec), h);
    return tf.add(this.ff.forward(this.norm3.forward(h)), h);
  }
}

/** `Transformer2DModel` (continuous input): GroupNorm, proj_in, transformer blocks, proj_out, residual. */
export class Transformer2D {
  readonly norm: GroupNorm;
  readonly projIn: Linear | Conv2d;
  readonly projOut: Linear | Conv2d;
  readonly blocks: BasicTransformerBlock[] = [];
  readonly path: string;
  private readonly scope: Scope;
  constructor(
    scope: Scope,
    opts: {
      channels: number;
      heads: number;
      dimHead: number;
      crossDim: number;
      layers?: number;
      groups?: number;
      linearProjection: boolean;
      attentionBias?: boolean;
      onlyCrossAttention?: boolean;
    },
  ) {
    this.path = scope.prefix;
    this.scope = scope;
    const inner = opts.heads * opts.dimHead;
    this.norm = new GroupNorm(scope.child('norm'), opts.groups ?? 32, opts.channels, 1e-6);
    this.projIn = opts.linearProjection ? new Linear(scope.child('proj_in'), opts.channels, inner) : new Conv2d(scope.child('proj_in'), opts.channels, inner, 1);
    for (let i = 0; i < (opts.layers ?? 1); i++) {
      this.blocks.push(
        new BasicTransformerBlock(scope.child('transformer_blocks').child(i), inner, opts.heads, opts.dimHead, opts.crossDim, opts.attentionBias ?? false, opts.onlyCrossAttention ?? false),
      );
    }
    this.projOut = opts.linearProjection ? new Linear(scope.child('proj_out'), inner, opts.channels) : new Conv2d(scope.child('proj_out'), inner, opts.channels, 1);
  }
  /**
   * With `checkpoint: blocks` the block keeps only its inputs and recomputes itself in the
   * backward pass, unless one of its attention maps is being captured (the map must stay on
   * the tape for gradients to flow through it).
   */
  forward(x: tf.Tensor4D, context: tf.Tensor, rec: Recorder): tf.Tensor4D {
    const captured = this.blocks.some((b) => rec.wantsAttention(b.attn1.path) || rec.wantsAttention(b.attn2.path));
    if (this.scope.store.memory.checkpoint !== 'blocks' || captured) return this.run(x, context, rec);
    const params = this.scope.store.gradientVariables(this.path);
    return recomputed((xi, ci) => this.run(xi as tf.Tensor4D, ci as tf.Tensor, NO_RECORD), [x, context], params) as tf.Tensor4D;
  }

  /** x: NHWC. A 1x1 conv on NHWC equals a linear over channels, so both projections apply per position. */
  private run(x: tf.Tensor4D, context: tf.Tensor, rec: Recorder): tf.Tensor4D {
    const [b, hgt, wid] = x.shape;
    const normed = this.norm.forward(x) as tf.Tensor4D;
    let h: tf.Tensor = this.projIn instanceof Conv2d ? this.projIn.forward(normed) : this.projIn.forward(normed);
    h = tf.reshape(h, [b, hgt * wid, h.shape[3] as number]);
    for (const blk of this.blocks) h = blk.forward(h, context, rec);
    const inner = h.shape[2] as number;
    h = tf.reshape(h, [b, hgt, wid, inner]);
    h = this.projOut instanceof Conv2d ? this.projOut.forward(h as tf.Tensor4D) : this.projOut.forward(h);
    return tf.add(h, x) as tf.Tensor4D;
  }
}
