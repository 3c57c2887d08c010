import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../../../framework/api.js';
import type { FeatureLevel, HeadOutput, SegHead } from '../../../framework/api.js';
import { Conv2d, GroupNorm, Params, resize } from '../common/nn.js';

export interface FpnSegOptions {
  numClasses: number;
  inChannels: number[];
  inStrides: number[];
  hidden: number;
  groups: number;
}

/** FPN lateral + top-down pathway with GroupNorm; shared by fpn-seg and Mask2Former's light pixel decoder. */
export class Fpn {
  readonly lateral: Conv2d[];
  readonly lateralNorm: GroupNorm[];
  readonly output: Conv2d[];
  readonly outputNorm: GroupNorm[];
  constructor(p: Params, name: string, inChannels: number[], readonly hidden: number, groups: number) {
    this.lateral = inChannels.map((c, i) => new Conv2d(p, `${name}.lateral_convs.${i}`, c, hidden, 1, { bias: false }));
    this.lateralNorm = inChannels.map((_, i) => new GroupNorm(p, `${name}.lateral_norms.${i}`, groups, hidden));
    this.output = inChannels.map((_, i) => new Conv2d(p, `${name}.output_convs.${i}`, hidden, hidden, 3, { bias: false }));
    this.outputNorm = inChannels.map((_, i) => new GroupNorm(p, `${name}.output_norms.${i}`, groups, hidden));
  }

  /** Features finest first; returns the refined pyramid finest first. */
  apply(feats: tf.Tensor4D[], top?: tf.Tensor4D): tf.Tensor4D[] {
    const out: tf.Tensor4D[] = new Array(feats.length);
    let prev: tf.Tensor4D | undefined = top;
    for (let i = feats.length - 1; i >= 0; i--) {
      let y = this.lateralNorm[i].apply(this.lateral[i].apply(feats[i]));
      if (prev) y = tf.add(y, resize(prev, y.shape[1], y.shape[2]));
      y = tf.relu(this.outputNorm[i].apply(this.output[i].apply(y)));
      out[i] = y;
      prev = y;
    }
    return out;
  }
}

export function checkLevels(levels: readonly FeatureLevel[], strides: readonly number[], channels: readonly number[], who: string): tf.Tensor4D[] {
  const got = levels.map((l) => l.stride);
  if (got.length !== strides.length || got.some((s, i) => s !== strides[i])) {
    throw new UserError(`${who}: expected feature strides [${strides.join(', ')}], got [${got.join(', ')}]`);
  }
  levels.forEach((l, i) => {
    if (l.features.shape[3] !== channels[i]) throw new UserError(`${who}: stride-${l.stride} features have ${l.features.shape[3]} channels, expected ${channels[i]}`);
  });
  return levels.map((l) => l.features);
}

/**
 * Per-pixel semantic head: FPN over the input levels, every level upsampled to the finest
 * stride and summed (Panoptic-FPN's semantic branch, simplified), then a 1x1 classifier.
 */
export class FpnSegHead implements SegHead {
  readonly type = 'fpn-seg';
  readonly numClasses: number;
  readonly inStrides: number[];
  readonly inChannels: number[];
  private readonly p: Params;
  private readonly fpn: Fpn;
  private readonly fuse: Conv2d;
  private readonly fuseNorm: GroupNorm;
  private readonly cls: Conv2d;

  constructor(readonly o: FpnSegOptions, seed: number) {
    this.numClasses = o.numClasses;
    this.inStrides = o.inStrides;
    this.inChannels = o.inChannels;
    this.p = new Params(seed);
    this.fpn = new Fpn(this.p, 'fpn', o.inChannels, o.hidden, o.groups);
    this.fuse = new Conv2d(this.p, 'fuse_conv', o.hidden, o.hidden, 3, { bias: false });
    this.fuseNorm = new GroupNorm(this.p, 'fuse_norm', o.groups, o.hidden);
    this.cls = new Conv2d(this.p, 'cls_seg', o.hidden, o.numClasses, 1);
  }

  get params(): ReadonlyMap<string, tf.Variable> {
    return this.p.map;
  }

  forward(levels: readonly FeatureLevel[]): HeadOutput {
    return tf.tidy(() => {
      const feats = this.fpn.apply(checkLevels(levels, this.inStrides, this.o.inChannels, 'head/fpn-seg'));
      const [, h, w] = feats[0].shape;
      const sum = tf.addN(feats.map((f) => resize(f, h, w))) as tf.Tensor4D;
      const fused = tf.relu(this.fuseNorm.apply(this.fuse.apply(sum)));
      return { kind: 'per-pixel' as const, logits: this.cls.apply(fused) };
    });
  }

  semantic(output: HeadOutput, height: number, width: number): tf.Tensor4D {
    if (output.kind !== 'per-pixel') throw new Error('fpn-seg: expected a per-pixel output');
    return tf.tidy(() => tf.softmax(resize(output.logits, height, width), -1));
  }

  dispose(): void {
    this.p.dispose();
  }
}
