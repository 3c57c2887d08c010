import { tf, Rng, UserError, type FeatureLevel } from '../../framework/api.js';

/**
 * The bridge from backbone taps to a segmentation head (RASS): every tapped feature gets a 1x1
 * bottleneck projection to `dim` channels; projections of equal stride are summed; the head's
 * strides that no tap provides are made by 2x2 average pooling of the next finer level (the
 * tiny backbones have fewer levels than Mask2Former's 4/8/16/32, as FPN's extra levels are
 * made by pooling). A head stride finer than every tap is an error.
 */
export class FeatureProjector {
  /** Projection weights by stable name (`proj.<tap>.weight` [1,1,C,dim], `.bias` [dim]). */
  readonly vars: Record<string, tf.Variable> = {};
  private readonly layers: { tap: string; w: tf.Variable; b: tf.Variable }[] = [];

  constructor(
    readonly taps: readonly { name: string; channels: number; stride: number }[],
    readonly dim: number,
    readonly headStrides: readonly number[],
    seed: number,
    where: string,
  ) {
    const have = [...new Set(taps.map((t) => t.stride))].sort((a, b) => a - b);
    const finest = have[0] as number;
    for (const s of headStrides) {
      if (s < finest) throw new UserError(`${where}: the head wants stride ${s} but the finest tapped feature has stride ${finest} (taps: ${taps.map((t) => `${t.name}@${t.stride}`).join(', ')})`);
      if (!have.includes(s) && !isPowerOfTwoMultiple(s, have)) {
        throw new UserError(`${where}: head stride ${s} cannot be made from the tapped strides ${have.join(', ')} by 2x pooling`);
      }
    }
    for (const t of taps) {
      const r = Rng.derive(seed, 'projection', t.name);
      // kaiming-uniform (a = sqrt(5)) as torch's Conv2d default: bound 1/sqrt(fan_in)
      const bound = 1 / Math.sqrt(t.channels);
      // tidy: a variable holds its initial value's data, but the initial tensor itself would stay allocated
      const w = tf.tidy(() => tf.variable(tf.tensor4d(r.fillUniform(new Float32Array(t.channels * dim), -bound, bound) as Float32Array, [1, 1, t.channels, dim]), true, `proj.${t.name}.weight#${serial++}`));
      const b = tf.tidy(() => tf.variable(tf.tensor1d(r.fillUniform(new Float32Array(dim), -bound, bound) as Float32Array), true, `proj.${t.name}.bias#${serial++}`));
      this.vars[`proj.${t.name}.weight`] = w;
      this.vars[`proj.${t.name}.bias`] = b;
      this.layers.push({ tap: t.name, w, b });
    }
  }

  /** Plain ops: tapped features -> one level per head stride, finest first. */
  levels(features: ReadonlyMap<string, tf.Tensor>): FeatureLevel[] {
    const byStride = new Map<number, tf.Tensor4D>();
    this.layers.forEach((l, i) => {
      const f = features.get(l.tap) as tf.Tensor4D;
      const p = tf.add(tf.conv2d(f, l.w as tf.Tensor4D, 1, 'valid'), l.b) as tf.Tensor4D;
      const s = (this.taps[i] as { stride: number }).stride;
      const prev = byStride.get(s);
      byStride.set(s, prev ? (tf.add(prev, p) as tf.Tensor4D) : p);
    });
    const out: FeatureLevel[] = [];
    for (const s of [...this.headStrides].sort((a, b) => a - b)) {
      let f = byStride.get(s);
      if (!f) {
        const finer = Math.max(...[...byStride.keys()].filter((k) => k < s));
        f = byStride.get(finer) as tf.Tensor4D;
        for (let k = finer; k < s; k *= 2) f = tf.avgPool(f, 2, 2, 'valid');
        byStride.set(s, f);
      }
      out.push({ stride: s, features: f });
    }
    return out;
  }

  dispose(): void {
    for (const v of Object.values(this.vars)) v.dispose();
  }
}

let serial = 0;

function isPowerOfTwoMultiple(s: number, have: readonly number[]): boolean {
  return have.some((h) => h < s && Number.isInteger(Math.log2(s / h)));
}

/** Stride and channels of each tap, measured by one forward at the input size (no gradients). */
export function tapGeometry(features: ReadonlyMap<string, tf.Tensor>, height: number): { name: string; channels: number; stride: number }[] {
  return [...features].map(([name, f]) => ({ name, channels: f.shape[3] as number, stride: Math.round(height / (f.shape[1] as number)) }));
}
