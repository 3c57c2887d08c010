import * as tf from '@tensorflow/tfjs-core';
import type { FeatureLevel, HeadOutput, MaskPrediction, SegHead } from '../../../framework/api.js';
import { customOp } from '../../../framework/api.js';
import { checkLevels } from '../fpn-seg/fpn-seg.js';
import { LayerNorm, Linear, MultiHeadAttention, Params, resize, sinePositionEmbedding } from '../common/nn.js';
import { FpnPixelDecoder, MSDeformPixelDecoder, type PixelDecoder } from './pixel-decoder.js';

export interface Mask2FormerOptions {
  numClasses: number;
  inChannels: number[];
  inStrides: number[];
  hidden: number;
  queries: number;
  decoderLayers: number;
  heads: number;
  ffn: number;
  pixelDecoder: 'msdeform' | 'fpn';
  pixelDecoderLayers: number;
  pixelDecoderHeads: number;
  pixelDecoderPoints: number;
  pixelDecoderFfn: number;
  maskDim: number;
  groups: number;
}

/** Defaults of docs/method.md (Mask2Former ADE20K semantic). */
export const MASK2FORMER_DEFAULTS: Omit<Mask2FormerOptions, 'numClasses' | 'inChannels' | 'inStrides'> = {
  hidden: 256,
  queries: 100,
  decoderLayers: 10,
  heads: 8,
  ffn: 2048,
  pixelDecoder: 'msdeform',
  pixelDecoderLayers: 6,
  pixelDecoderHeads: 8,
  pixelDecoderPoints: 4,
  pixelDecoderFfn: 1024,
  maskDim: 256,
  groups: 32,
};

class DecoderLayer {
  readonly cross: MultiHeadAttention;
  readonly crossNorm: LayerNorm;
  readonly self: MultiHeadAttention;
  readonly selfNorm: LayerNorm;
  readonly lin1: Linear;
  readonly lin2: Linear;
  readonly ffnNorm: LayerNorm;
  constructor(p: Params, i: number, d: number, heads: number, ffn: number) {
    const n = 'predictor';
    this.cross = new MultiHeadAttention(p, `${n}.transformer_cross_attention_layers.${i}.multihead_attn`, d, heads);
    this.crossNorm = new LayerNorm(p, `${n}.transformer_cross_attention_layers.${i}.norm`, d);
    this.self = new MultiHeadAttention(p, `${n}.transformer_self_attention_layers.${i}.self_attn`, d, heads);
    this.selfNorm = new LayerNorm(p, `${n}.transformer_self_attention_layers.${i}.norm`, d);
    this.lin1 = new Linear(p, `${n}.transformer_ffn_layers.${i}.linear1`, d, ffn);
    this.lin2 = new Linear(p, `${n}.transformer_ffn_layers.${i}.linear2`, ffn, d);
    this.ffnNorm = new LayerNorm(p, `${n}.transformer_ffn_layers.${i}.norm`, d);
  }
}

/**
 * Mask2Former: pixel decoder (multi-scale deformable attention, or a light FPN) + transformer
 * decoder with masked cross-attention (each query attends only where its previous mask
 * prediction is foreground), round-robin over three memory scales, post-norm layers, and a
 * prediction (class + mask) before the first and after every layer for deep supervision.
 */
/**
 * Mask2Former's masked attention: -1e9 where a query's predicted mask (resized to the memory
 * level) is below 0.5, except for a query whose mask is empty everywhere, which attends
 * everywhere (else its softmax runs over nothing). [N, h, w, Q] logits -> [N * heads, Q, h*w].
 * A boolean mask carries no gradient (the reference's .detach()): one custom op whose gradient
 * is zero, computed on the device so a training step with it compiles (issue #21).
 */
const attentionMaskOp = (size: [number, number], heads: number) =>
  customOp(([logits]) => {
    const x = logits as tf.Tensor4D;
    const [N, , , Q] = x.shape;
    const hw = size[0] * size[1];
    const value = tf.tidy(() => {
      const small = tf.reshape(tf.transpose(resize(x, size[0], size[1]), [0, 3, 1, 2]), [N, Q, hw]);
      const below = tf.cast(tf.less(small, 0), 'float32'); // sigmoid < 0.5
      const any = tf.cast(tf.greaterEqual(tf.max(small, 2, true), 0), 'float32');
      const add = tf.mul(tf.mul(below, any), -1e9);
      return tf.reshape(tf.tile(tf.expandDims(add, 1), [1, heads, 1, 1]), [N * heads, Q, hw]);
    });
    return { value, gradFunc: () => [tf.zerosLike(x)] };
  });

export function attentionMask(maskLogits: tf.Tensor4D, size: [number, number], heads: number): tf.Tensor3D {
  return attentionMaskOp(size, heads)(maskLogits) as tf.Tensor3D;
}

export class Mask2FormerHead implements SegHead {
  readonly type = 'mask2former';
  readonly numClasses: number;
  readonly inStrides: number[];
  readonly inChannels: number[];
  private readonly p: Params;
  private readonly pixel: PixelDecoder;
  private readonly queryFeat: tf.Variable;
  private readonly queryEmbed: tf.Variable;
  private readonly levelEmbed: tf.Variable;
  private readonly layers: DecoderLayer[];
  private readonly decoderNorm: LayerNorm;
  private readonly classEmbed: Linear;
  private readonly maskEmbed: Linear[];

  constructor(readonly o: Mask2FormerOptions, seed: number) {
    this.numClasses = o.numClasses;
    this.inStrides = o.inStrides;
    this.inChannels = o.inChannels;
    const p = (this.p = new Params(seed));
    const d = o.hidden;
    this.pixel =
      o.pixelDecoder === 'fpn'
        ? new FpnPixelDecoder(p, { inChannels: o.inChannels, hidden: d, maskDim: o.maskDim, groups: o.groups })
        : new MSDeformPixelDecoder(p, { inChannels: o.inChannels, hidden: d, maskDim: o.maskDim, ffn: o.pixelDecoderFfn, layers: o.pixelDecoderLayers, heads: o.pixelDecoderHeads, points: o.pixelDecoderPoints, groups: o.groups });
    this.queryFeat = p.normal('predictor.query_feat.weight', [o.queries, d], 1);
    this.queryEmbed = p.normal('predictor.query_embed.weight', [o.queries, d], 1);
    this.levelEmbed = p.normal('predictor.level_embed.weight', [3, d], 1);
    this.layers = Array.from({ length: o.decoderLayers }, (_, i) => new DecoderLayer(p, i, d, o.heads, o.ffn));
    this.decoderNorm = new LayerNorm(p, 'predictor.decoder_norm', d);
    this.classEmbed = new Linear(p, 'predictor.class_embed', d, o.numClasses + 1);
    this.maskEmbed = [0, 1, 2].map((i) => new Linear(p, `predictor.mask_embed.layers.${i}`, d, i === 2 ? o.maskDim : d));
  }

  get params(): ReadonlyMap<string, tf.Variable> {
    return this.p.map;
  }

  /** Class logits, mask logits and the (detached) additive attention mask for the next layer's memory size. */
  private predict(x: tf.Tensor3D, maskFeatures: tf.Tensor4D, attnSize: [number, number] | null): MaskPrediction & { attnMask: tf.Tensor3D | null } {
    const [N, Q] = x.shape;
    const y = this.decoderNorm.apply(x);
    const classLogits = this.classEmbed.apply(y) as tf.Tensor3D;
    let e: tf.Tensor = y;
    this.maskEmbed.forEach((l, i) => (e = i < 2 ? tf.relu(l.apply(e)) : l.apply(e)));
    const [, h, w, C] = maskFeatures.shape;
    // masks[n, h, w, q] = sum_c maskFeatures[n, h, w, c] * embed[n, q, c]
    const maskLogits = tf.reshape(tf.matMul(tf.reshape(maskFeatures, [N, h * w, C]), e, false, true), [N, h, w, Q]) as tf.Tensor4D;
    const attnMask = attnSize ? attentionMask(maskLogits, attnSize, this.o.heads) : null;
    return { classLogits, maskLogits, attnMask };
  }

  forward(levels: readonly FeatureLevel[]): HeadOutput {
    // tidy keeps only the returned tensors: [class0, mask0, class1, mask1, ...], earliest first
    const flat = tf.tidy(() => {
      const feats = checkLevels(levels, this.inStrides, this.o.inChannels, 'head/mask2former');
      const { maskFeatures, multiScale } = this.pixel.apply(feats);
      const N = feats[0].shape[0];
      const d = this.o.hidden;
      const mem = multiScale.map((m, l) => {
        const [, h, w] = m.shape;
        const le = tf.reshape(tf.slice(this.levelEmbed, [l % 3, 0], [1, d]), [1, 1, d]);
        return { src: tf.add(tf.reshape(m, [N, h * w, d]), le) as tf.Tensor3D, pos: tf.tile(tf.reshape(sinePositionEmbedding(h, w, d), [1, h * w, d]), [N, 1, 1]) as tf.Tensor3D, size: [h, w] as [number, number] };
      });
      const qpos = tf.tile(tf.expandDims(this.queryEmbed, 0), [N, 1, 1]) as tf.Tensor3D;
      let x = tf.tile(tf.expandDims(this.queryFeat, 0), [N, 1, 1]) as tf.Tensor3D;
      const preds: MaskPrediction[] = [];
      let pr = this.predict(x, maskFeatures, mem[0].size);
      preds.push({ classLogits: pr.classLogits, maskLogits: pr.maskLogits });
      this.layers.forEach((layer, i) => {
        const m = mem[i % mem.length];
        const ca = layer.cross.apply(tf.add(x, qpos) as tf.Tensor3D, tf.add(m.src, m.pos) as tf.Tensor3D, m.src, pr.attnMask ?? undefined);
        x = layer.crossNorm.apply(tf.add(x, ca)) as tf.Tensor3D;
        const q = tf.add(x, qpos) as tf.Tensor3D;
        x = layer.selfNorm.apply(tf.add(x, layer.self.apply(q, q, x))) as tf.Tensor3D;
        x = layer.ffnNorm.apply(tf.add(x, layer.lin2.apply(tf.relu(layer.lin1.apply(x))))) as tf.Tensor3D;
        pr = this.predict(x, maskFeatures, mem[(i + 1) % mem.length].size);
        preds.push({ classLogits: pr.classLogits, maskLogits: pr.maskLogits });
      });
      return preds.flatMap((q) => [q.classLogits, q.maskLogits]);
    });
    const preds: MaskPrediction[] = [];
    for (let i = 0; i < flat.length; i += 2) preds.push({ classLogits: flat[i] as tf.Tensor3D, maskLogits: flat[i + 1] as tf.Tensor4D });
    return { kind: 'mask-classification', final: preds[preds.length - 1], aux: preds.slice(0, -1) };
  }

  /** softmax(class)[:, :, :C] x sigmoid(mask upsampled to the image): [N, height, width, C]. */
  semantic(output: HeadOutput, height: number, width: number): tf.Tensor4D {
    if (output.kind !== 'mask-classification') throw new Error('mask2former: expected a mask-classification output');
    return tf.tidy(() => {
      const { classLogits, maskLogits } = output.final;
      const [N, Q, C1] = classLogits.shape;
      const prob = tf.slice(tf.softmax(classLogits, -1), [0, 0, 0], [N, Q, C1 - 1]);
      const masks = tf.sigmoid(resize(maskLogits, height, width));
      return tf.reshape(tf.matMul(tf.reshape(masks, [N, height * width, Q]), prob), [N, height, width, C1 - 1]) as tf.Tensor4D;
    });
  }

  dispose(): void {
    this.p.dispose();
  }
}
