import * as tf from '@tensorflow/tfjs-core';
import { recomputed } from '../../../framework/api.js';
import { Conv2d, GroupNorm, Linear, silu, upsampleNearest2x, type Scope } from './nn.js';

/**
 * diffusers' `ResnetBlock2D`: time-embedding norm "default" (added before norm2) or
 * "scale_shift" (norm2 output * (1 + scale) + shift), output divided by `outputScale`.
 */
export class ResnetBlock2D {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly shortcut: Conv2d | null;
  readonly path: string;
  private readonly scope: Scope;
  readonly act: (x: tf.Tensor) => tf.Tensor;
  readonly outputScale: number;
  readonly scaleShift: boolean;
  constructor(
    scope: Scope,
    opts: {
      inChannels: number;
      outChannels: number;
      tembChannels: number | null;
      groups: number;
      eps: number;
      act?: (x: tf.Tensor) => tf.Tensor;
      outputScale?: number;
      scaleShift?: boolean;
    },
  ) {
    this.path = scope.prefix;
    this.scope = scope;
    this.act = opts.act ?? silu;
    this.outputScale = opts.outputScale ?? 1;
    this.scaleShift = opts.scaleShift ?? false;
    const { inChannels: cin, outChannels: cout } = opts;
    this.norm1 = new GroupNorm(scope.child('norm1'), opts.groups, cin, opts.eps);
    this.conv1 = new Conv2d(scope.child('conv1'), cin, cout, 3, 1, 1);
    // scale_shift: the projection yields a scale and a shift per channel
    this.timeEmbProj = opts.tembChannels ? new Linear(scope.child('time_emb_proj'), opts.tembChannels, this.scaleShift ? 2 * cout : cout) : null;
    this.norm2 = new GroupNorm(scope.child('norm2'), opts.groups, cout, opts.eps);
    this.conv2 = new Conv2d(scope.child('conv2'), cout, cout, 3, 1, 1);
    this.shortcut = cin !== cout ? new Conv2d(scope.child('conv_shortcut'), cin, cout, 1) : null;
  }
  /** With `checkpoint: blocks` only x (and temb) are kept; the block recomputes itself in the backward pass. */
  forward(x: tf.Tensor4D, temb: tf.Tensor | null): tf.Tensor4D {
    if (this.scope.store.memory.checkpoint !== 'blocks') return this.run(x, temb);
    const params = this.scope.store.gradientVariables(this.path);
    if (temb && this.timeEmbProj) return recomputed((xi, ti) => this.run(xi as tf.Tensor4D, ti as tf.Tensor), [x, temb], params) as tf.Tensor4D;
    return recomputed((xi) => this.run(xi as tf.Tensor4D, null), [x], params) as tf.Tensor4D;
  }

  private run(x: tf.Tensor4D, temb: tf.Tensor | null): tf.Tensor4D {
    const act = this.act;
    let h: tf.Tensor = this.conv1.forward(act(this.norm1.forward(x)) as tf.Tensor4D);
    const t = this.timeEmbProj && temb ? this.timeEmbProj.forward(act(temb)) : null;
    const t4 = t ? tf.reshape(t, [t.shape[0] as number, 1, 1, t.shape[1] as number]) : null;
    if (t4 && this.scaleShift) {
      const [scale, shift] = tf.split(t4, 2, 3);
      h = tf.add(tf.mul(this.norm2.forward(h), tf.add(scale, 1)), shift);
    } else {
      if (t4) h = tf.add(h, t4);
      h = this.norm2.forward(h);
    }
    h = this.conv2.forward(act(h) as tf.Tensor4D);
    const skip = this.shortcut ? this.shortcut.forward(x) : x;
    const out = tf.add(skip, h) as tf.Tensor4D;
    return this.outputScale === 1 ? out : (tf.div(out, this.outputScale) as tf.Tensor4D);
  }
}

/** Stride-2 conv. `asymmetricPad` is the VAE encoder's form: pad right/bottom by one, then a padding-0 conv. */
export class Downsample2D {
  readonly conv: Conv2d;
  constructor(scope: Scope, channels: number, readonly asymmetricPad = false) {
    this.conv = new Conv2d(scope.child('conv'), channels, channels, 3, 2, asymmetricPad ? 0 : 1);
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    const input = this.asymmetricPad ? tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]]) : x;
    return this.conv.forward(input);
  }
}

/** Nearest 2x upsampling followed by a 3x3 conv. */
export class Upsample2D {
  readonly conv: Conv2d;
  constructor(scope: Scope, channels: number) {
    this.conv = new Conv2d(scope.child('conv'), channels, channels, 3, 1, 1);
  }
  /** `size`: explicit output size (diffusers' upsample_size, used when the input was not a multiple of the total stride). */
  forward(x: tf.Tensor4D, size?: [number, number]): tf.Tensor4D {
    const [, h, w] = x.shape;
    const up = !size || (size[0] === 2 * h && size[1] === 2 * w) ? upsampleNearest2x(x) : tf.image.resizeNearestNeighbor(x, size, false, false);
    return this.conv.forward(up);
  }
}
