import * as tf from '@tensorflow/tfjs-core';
import { Fpn } from '../fpn-seg/fpn-seg.js';
import { Conv2d, GroupNorm, LayerNorm, Linear, Params, resize, sinePositionEmbedding } from '../common/nn.js';
import { msDeformAttnCore } from '../common/sampling.js';

/** What a pixel decoder hands the transformer decoder. */
export interface PixelDecoderOutput {
  /** [N, h4, w4, maskDim] per-pixel embeddings at the finest stride. */
  maskFeatures: tf.Tensor4D;
  /** Transformer-decoder memories, coarsest first (e.g. strides 32, 16, 8), each [N, h, w, hidden]. */
  multiScale: tf.Tensor4D[];
}

export interface PixelDecoder {
  apply(feats: tf.Tensor4D[]): PixelDecoderOutput;
}

/**
 * Multi-scale deformable attention (Deformable DETR): each query attends to `points` sampled
 * locations per head and level around its reference point; offsets and weights come from the
 * query by linear layers.
 */
export class MSDeformAttn {
  readonly offsets: Linear;
  readonly weights: Linear;
  readonly valueProj: Linear;
  readonly outputProj: Linear;
  constructor(p: Params, name: string, readonly dim: number, readonly levels: number, readonly heads: number, readonly points: number) {
    this.offsets = new Linear(p, `${name}.sampling_offsets`, dim, heads * levels * points * 2, { init: 'zeros' });
    // Deformable DETR's bias init: head h looks along direction 2*pi*h/heads, point k at distance k+1
    const bias = new Float32Array(heads * levels * points * 2);
    for (let h = 0; h < heads; h++) {
      const t = (2 * Math.PI * h) / heads;
      const c = Math.cos(t);
      const s = Math.sin(t);
      const m = Math.max(Math.abs(c), Math.abs(s));
      for (let l = 0; l < levels; l++) {
        for (let k = 0; k < points; k++) {
          const o = ((h * levels + l) * points + k) * 2;
          bias[o] = (c / m) * (k + 1);
          bias[o + 1] = (s / m) * (k + 1);
        }
      }
    }
    // assign copies the values: the temporary must be freed or every head leaks one tensor
    const init = tf.tensor1d(bias);
    (this.offsets.b as tf.Variable).assign(init);
    init.dispose();
    this.weights = new Linear(p, `${name}.attention_weights`, dim, heads * levels * points, { init: 'zeros' });
    this.valueProj = new Linear(p, `${name}.value_proj`, dim, dim);
    this.outputProj = new Linear(p, `${name}.output_proj`, dim, dim);
  }

  /**
   * query [N, Lq, D]; reference [Lq, 2] in [0,1] (same for every level: all maps cover the whole
   * image); input [N, S, D] = the flattened levels; shapes [h, w] per level in `input` order.
   */
  apply(query: tf.Tensor3D, reference: tf.Tensor2D, input: tf.Tensor3D, shapes: [number, number][]): tf.Tensor3D {
    const [N, Lq] = query.shape;
    const { heads: M, levels: L, points: P, dim: D } = this;
    const value = tf.reshape(this.valueProj.apply(input), [N, -1, M, D / M]);
    const values = tf.split(value, shapes.map(([h, w]) => h * w), 1) as tf.Tensor4D[];
    const off = tf.reshape(this.offsets.apply(query), [N, Lq, M, L, P, 2]);
    // offsets are in pixels of each level: normalise by (w_l, h_l)
    const norm = tf.reshape(tf.tensor2d(shapes.flatMap(([h, w]) => [1 / w, 1 / h]), [L, 2]), [1, 1, 1, L, 1, 2]);
    const loc = tf.add(tf.reshape(reference, [1, Lq, 1, 1, 1, 2]), tf.mul(off, norm));
    const attn = tf.reshape(tf.softmax(tf.reshape(this.weights.apply(query), [N, Lq, M, L * P]), -1), [N, Lq, M, L, P]);
    return this.outputProj.apply(msDeformAttnCore(values, shapes, loc, attn)) as tf.Tensor3D;
  }
}

class EncoderLayer {
  readonly attn: MSDeformAttn;
  readonly norm1: LayerNorm;
  readonly lin1: Linear;
  readonly lin2: Linear;
  readonly norm2: LayerNorm;
  constructor(p: Params, name: string, dim: number, ffn: number, levels: number, heads: number, points: number) {
    this.attn = new MSDeformAttn(p, `${name}.self_attn`, dim, levels, heads, points);
    this.norm1 = new LayerNorm(p, `${name}.norm1`, dim);
    this.lin1 = new Linear(p, `${name}.linear1`, dim, ffn);
    this.lin2 = new Linear(p, `${name}.linear2`, ffn, dim);
    this.norm2 = new LayerNorm(p, `${name}.norm2`, dim);
  }

  apply(src: tf.Tensor3D, pos: tf.Tensor3D, ref: tf.Tensor2D, shapes: [number, number][]): tf.Tensor3D {
    const a = this.attn.apply(tf.add(src, pos), ref, src, shapes);
    let x = this.norm1.apply(tf.add(src, a)) as tf.Tensor3D;
    x = this.norm2.apply(tf.add(x, this.lin2.apply(tf.relu(this.lin1.apply(x))))) as tf.Tensor3D;
    return x;
  }
}

export interface MSDeformPixelDecoderOptions {
  inChannels: number[];
  hidden: number;
  maskDim: number;
  ffn: number;
  layers: number;
  heads: number;
  points: number;
  groups: number;
}

/**
 * Mask2Former's MSDeformAttnPixelDecoder: the three coarsest levels are projected to `hidden`,
 * refined jointly by deformable-attention encoder layers, then an FPN step adds the finest
 * level and a 1x1 conv gives the mask features.
 */
export class MSDeformPixelDecoder implements PixelDecoder {
  readonly inputProj: { conv: Conv2d; norm: GroupNorm }[];
  readonly levelEmbed: tf.Variable;
  readonly layers: EncoderLayer[];
  readonly lateral: Conv2d;
  readonly lateralNorm: GroupNorm;
  readonly output: Conv2d;
  readonly outputNorm: GroupNorm;
  readonly maskFeatures: Conv2d;
  private readonly nT: number;

  constructor(p: Params, readonly o: MSDeformPixelDecoderOptions) {
    const name = 'pixel_decoder';
    this.nT = Math.min(3, o.inChannels.length - 1);
    const tIn = o.inChannels.slice(-this.nT).reverse(); // coarsest first
    this.inputProj = tIn.map((c, i) => ({ conv: new Conv2d(p, `${name}.input_proj.${i}.0`, c, o.hidden, 1), norm: new GroupNorm(p, `${name}.input_proj.${i}.1`, o.groups, o.hidden) }));
    this.levelEmbed = p.normal(`${name}.transformer.level_embed`, [this.nT, o.hidden], 1);
    this.layers = Array.from({ length: o.layers }, (_, i) => new EncoderLayer(p, `${name}.transformer.encoder.layers.${i}`, o.hidden, o.ffn, this.nT, o.heads, o.points));
    this.lateral = new Conv2d(p, `${name}.adapter_1`, o.inChannels[0], o.hidden, 1, { bias: false });
    this.lateralNorm = new GroupNorm(p, `${name}.adapter_1.norm`, o.groups, o.hidden);
    this.output = new Conv2d(p, `${name}.layer_1`, o.hidden, o.hidden, 3, { bias: false });
    this.outputNorm = new GroupNorm(p, `${name}.layer_1.norm`, o.groups, o.hidden);
    this.maskFeatures = new Conv2d(p, `${name}.mask_features`, o.hidden, o.maskDim, 1);
  }

  apply(feats: tf.Tensor4D[]): PixelDecoderOutput {
    const N = feats[0].shape[0];
    const D = this.o.hidden;
    const tFeats = feats.slice(-this.nT).reverse();
    const shapes = tFeats.map((f) => [f.shape[1], f.shape[2]] as [number, number]);
    const srcs: tf.Tensor[] = [];
    const poss: tf.Tensor[] = [];
    const refs: number[] = [];
    tFeats.forEach((f, l) => {
      const [h, w] = shapes[l];
      const x = this.inputProj[l].norm.apply(this.inputProj[l].conv.apply(f));
      srcs.push(tf.reshape(x, [N, h * w, D]));
      const le = tf.reshape(tf.slice(this.levelEmbed, [l, 0], [1, D]), [1, 1, D]);
      poss.push(tf.add(tf.reshape(sinePositionEmbedding(h, w, D), [1, h * w, D]), le));
      for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) refs.push((xx + 0.5) / w, (y + 0.5) / h);
    });
    let src = tf.concat(srcs, 1) as tf.Tensor3D;
    const pos = tf.tile(tf.concat(poss, 1), [N, 1, 1]) as tf.Tensor3D;
    const ref = tf.tensor2d(refs, [refs.length / 2, 2]);
    for (const layer of this.layers) src = layer.apply(src, pos, ref, shapes);
    const outs = tf.split(src, shapes.map(([h, w]) => h * w), 1).map((t, l) => tf.reshape(t, [N, shapes[l][0], shapes[l][1], D]) as tf.Tensor4D);
    const finest = outs[outs.length - 1];
    let y = this.lateralNorm.apply(this.lateral.apply(feats[0]));
    y = tf.add(y, resize(finest, y.shape[1], y.shape[2]));
    y = tf.relu(this.outputNorm.apply(this.output.apply(y)));
    return { maskFeatures: this.maskFeatures.apply(y), multiScale: outs };
  }
}

/** The lighter option: an FPN over all levels (no attention); memories are its three coarsest outputs. */
export class FpnPixelDecoder implements PixelDecoder {
  readonly fpn: Fpn;
  readonly maskFeatures: Conv2d;
  constructor(p: Params, o: { inChannels: number[]; hidden: number; maskDim: number; groups: number }) {
    this.fpn = new Fpn(p, 'pixel_decoder', o.inChannels, o.hidden, o.groups);
    this.maskFeatures = new Conv2d(p, 'pixel_decoder.mask_features', o.hidden, o.maskDim, 1);
  }

  apply(feats: tf.Tensor4D[]): PixelDecoderOutput {
    const outs = this.fpn.apply(feats);
    const nT = Math.min(3, outs.length - 1);
    return { maskFeatures: this.maskFeatures.apply(outs[0]), multiScale: outs.slice(-nT).reverse() };
  }
}
