/**
 * DISTS (Ding et al. 2020) as the DISTS-pytorch package computes it: VGG16 whose max-pools are
 * replaced by L2 pooling (3x3 Hann window, stride 2), features of 6 stages (the input itself plus
 * relu1_2 .. relu5_3); per channel a structure term (means) and a texture term (variances and
 * covariance), weighted by the learned alpha / beta (normalised by their total); DISTS = 1 - sum.
 * Weights come from a user safetensors file: `features.<i>.weight/bias` (torchvision VGG16) plus
 * `alpha` and `beta` (1475 values each, as in the package's weights.pt).
 */
import { existsSync } from 'node:fs';
import { readSafetensors, tf, toFloat32, UserError } from '../../../framework/api.js';
import type { MetricImage } from '../../../framework/api.js';
import { pairDistance } from '../common/pair-distance.js';

const STAGES: number[][] = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]];
const CHANNELS = [3, 64, 128, 256, 512, 512];
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
export const DISTS_WEIGHTS_HINT = 'make it with `python scripts/convert_dists_weights.py --dists weights.pt --backbone vgg16-397923af.pth --out FILE.safetensors`';

export class Dists {
  private readonly w = new Map<string, tf.Tensor>();
  private readonly alpha: Float32Array;
  private readonly beta: Float32Array;

  constructor(tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>, where: string) {
    const need = (name: string) => {
      const t = tensors.get(name);
      if (!t) throw new UserError(`metric/dists: ${where} has no tensor "${name}" (${DISTS_WEIGHTS_HINT})`);
      return t;
    };
    for (const idx of STAGES.flat()) {
      const k = need(`features.${idx}.weight`);
      this.w.set(`${idx}.w`, tf.tidy(() => tf.transpose(tf.tensor4d(k.data, k.shape as [number, number, number, number]), [2, 3, 1, 0])));
      this.w.set(`${idx}.b`, tf.tensor1d(need(`features.${idx}.bias`).data));
    }
    const total = CHANNELS.reduce((a, b) => a + b, 0);
    this.alpha = need('alpha').data;
    this.beta = need('beta').data;
    if (this.alpha.length !== total || this.beta.length !== total) throw new UserError(`metric/dists: ${where}: alpha/beta must hold ${total} values each`);
  }

  static fromFile(path: string): Dists {
    const file = readSafetensors(path);
    const m = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, e] of file.tensors) m.set(k, { shape: e.shape, data: toFloat32(e) });
    return new Dists(m, path);
  }

  dispose(): void {
    for (const t of this.w.values()) t.dispose();
    this.w.clear();
  }

  private l2pool(x: tf.Tensor4D): tf.Tensor4D {
    const c = x.shape[3];
    // outer([0.5, 1, 0.5]) / 4, one copy per channel (depthwise)
    const g = [0.0625, 0.125, 0.0625, 0.125, 0.25, 0.125, 0.0625, 0.125, 0.0625];
    const filt = tf.tile(tf.reshape(tf.tensor1d(g), [3, 3, 1, 1]), [1, 1, c, 1]) as tf.Tensor4D;
    const sq = tf.pad(tf.square(x), [[0, 0], [1, 1], [1, 1], [0, 0]]);
    return tf.sqrt(tf.add(tf.depthwiseConv2d(sq, filt, 2, 'valid'), 1e-12));
  }

  private features(x: tf.Tensor4D): tf.Tensor4D[] {
    let h = tf.div(tf.sub(x, tf.tensor1d(MEAN)), tf.tensor1d(STD)) as tf.Tensor4D;
    const outs: tf.Tensor4D[] = [x];
    STAGES.forEach((convs, s) => {
      if (s > 0) h = this.l2pool(h);
      for (const idx of convs) {
        const y = tf.conv2d(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]), this.w.get(`${idx}.w`) as tf.Tensor4D, 1, 'valid');
        h = tf.relu(tf.add(y, this.w.get(`${idx}.b`)!));
      }
      outs.push(h);
    });
    return outs;
  }

  /** DISTS per pair for NHWC inputs in [0, 1]. */
  distance(x: tf.Tensor4D, y: tf.Tensor4D): Float32Array {
    return tf.tidy(() => {
      const f0 = this.features(x);
      const f1 = this.features(y);
      let wsum = 0;
      for (let i = 0; i < this.alpha.length; i++) wsum += this.alpha[i] + this.beta[i];
      const c1 = 1e-6;
      const c2 = 1e-6;
      let total: tf.Tensor = tf.zeros([x.shape[0]]);
      let off = 0;
      CHANNELS.forEach((ch, k) => {
        const a = tf.div(tf.tensor1d(this.alpha.slice(off, off + ch)), wsum);
        const b = tf.div(tf.tensor1d(this.beta.slice(off, off + ch)), wsum);
        off += ch;
        const xm = tf.mean(f0[k], [1, 2]);
        const ym = tf.mean(f1[k], [1, 2]);
        const s1 = tf.div(tf.add(tf.mul(tf.mul(xm, ym), 2), c1), tf.add(tf.add(tf.square(xm), tf.square(ym)), c1));
        const xv = tf.mean(tf.square(tf.sub(f0[k], tf.reshape(xm, [-1, 1, 1, ch]))), [1, 2]);
        const yv = tf.mean(tf.square(tf.sub(f1[k], tf.reshape(ym, [-1, 1, 1, ch]))), [1, 2]);
        const cov = tf.sub(tf.mean(tf.mul(f0[k], f1[k]), [1, 2]), tf.mul(xm, ym));
        const s2 = tf.div(tf.add(tf.mul(cov, 2), c2), tf.add(tf.add(xv, yv), c2));
        total = tf.add(total, tf.add(tf.sum(tf.mul(s1, a), 1), tf.sum(tf.mul(s2, b), 1)));
      });
      return tf.sub(1, total).dataSync() as Float32Array;
    });
  }

  /** DISTS of two RGB images in [0, 255]. */
  imageDistance(a: MetricImage, b: MetricImage): number {
    return pairDistance(a, b, (x) => tf.div(x, 255) as tf.Tensor4D, (x, y) => this.distance(x, y));
  }
}

export function checkDistsWeights(path: string | undefined, optionPath: string): string {
  if (!path) throw new UserError(`${optionPath}.weights: metric/dists needs a weights file (safetensors); ${DISTS_WEIGHTS_HINT}`);
  if (!existsSync(path)) throw new UserError(`${optionPath}.weights: no DISTS weights at ${path}; put the safetensors file there or ${DISTS_WEIGHTS_HINT}`);
  return path;
}
