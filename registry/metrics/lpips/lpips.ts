/**
 * LPIPS (Zhang et al. 2018) as the `lpips` package (v0.1) computes it, with AlexNet, VGG16 or
 * SqueezeNet 1.1 features: inputs in [-1, 1] are shifted/scaled per channel, each tapped feature
 * map is unit-normalised over channels, squared differences are weighted per channel by a 1x1
 * "lin" layer, averaged over space and summed over taps. Weights come from a safetensors file the
 * user supplies (scripts/convert_lpips_weights.py makes it from the PyTorch files), named like
 * torchvision's backbone (`features.<i>.weight/bias`) plus `lin<k>.model.1.weight`.
 */
import { existsSync } from 'node:fs';
import { readSafetensors, tf, toFloat32, UserError } from '../../../framework/api.js';
import type { MetricImage } from '../../../framework/api.js';
import { pairDistance } from '../common/pair-distance.js';

export type LpipsNet = 'alex' | 'vgg' | 'squeeze';

type Op =
  | { op: 'conv'; idx: number; stride: number; pad: number }
  | { op: 'pool'; k: number; s: number; ceil: boolean }
  | { op: 'fire'; idx: number }
  | { op: 'tap' };

const conv = (idx: number, stride = 1, pad = 1): Op => ({ op: 'conv', idx, stride, pad });
const TAP: Op = { op: 'tap' };

/** torchvision `features` layouts up to the last tap LPIPS uses (ReLU follows every conv). */
const LAYOUTS: Record<LpipsNet, Op[]> = {
  alex: [conv(0, 4, 2), TAP, { op: 'pool', k: 3, s: 2, ceil: false }, conv(3, 1, 2), TAP, { op: 'pool', k: 3, s: 2, ceil: false }, conv(6), TAP, conv(8), TAP, conv(10), TAP],
  vgg: [
    conv(0), conv(2), TAP, { op: 'pool', k: 2, s: 2, ceil: false }, conv(5), conv(7), TAP, { op: 'pool', k: 2, s: 2, ceil: false },
    conv(10), conv(12), conv(14), TAP, { op: 'pool', k: 2, s: 2, ceil: false }, conv(17), conv(19), conv(21), TAP,
    { op: 'pool', k: 2, s: 2, ceil: false }, conv(24), conv(26), conv(28), TAP,
  ],
  squeeze: [
    conv(0, 2, 0), TAP, { op: 'pool', k: 3, s: 2, ceil: true }, { op: 'fire', idx: 3 }, { op: 'fire', idx: 4 }, TAP,
    { op: 'pool', k: 3, s: 2, ceil: true }, { op: 'fire', idx: 6 }, { op: 'fire', idx: 7 }, TAP,
    { op: 'pool', k: 3, s: 2, ceil: true }, { op: 'fire', idx: 9 }, TAP, { op: 'fire', idx: 10 }, TAP, { op: 'fire', idx: 11 }, TAP, { op: 'fire', idx: 12 }, TAP,
  ],
};

const SHIFT = [-0.03, -0.088, -0.188];
const SCALE = [0.458, 0.448, 0.45];

export const LPIPS_WEIGHTS_HINT = 'convert the official files with `python scripts/convert_lpips_weights.py --net NET --lin LIN.pth --backbone TORCHVISION.pth --out FILE.safetensors`';

/** The weight names a net needs (for checks and the converter's docs). */
export function lpipsWeightNames(net: LpipsNet): string[] {
  const names: string[] = [];
  let taps = 0;
  for (const o of LAYOUTS[net]) {
    if (o.op === 'conv') names.push(`features.${o.idx}.weight`, `features.${o.idx}.bias`);
    if (o.op === 'fire') for (const p of ['squeeze', 'expand1x1', 'expand3x3']) names.push(`features.${o.idx}.${p}.weight`, `features.${o.idx}.${p}.bias`);
    if (o.op === 'tap') names.push(`lin${taps++}.model.1.weight`);
  }
  return names;
}

export class Lpips {
  private readonly w = new Map<string, tf.Tensor>();

  /**
   * `tensors`: name -> {shape (PyTorch layout), data}. Conv kernels are turned from OIHW into HWIO once.
   * `owner` names the component in errors (`metric/lpips`, `loss/lpips`).
   */
  constructor(readonly net: LpipsNet, tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>, where: string, owner = 'metric/lpips') {
    for (const name of lpipsWeightNames(net)) {
      const t = tensors.get(name);
      if (!t) throw new UserError(`${owner}: ${where} has no tensor "${name}" needed by net "${net}" (${LPIPS_WEIGHTS_HINT})`);
      this.w.set(name, t.shape.length === 4 ? tf.tidy(() => tf.transpose(tf.tensor4d(t.data, t.shape as [number, number, number, number]), [2, 3, 1, 0])) : tf.tensor(t.data, t.shape));
    }
  }

  static fromFile(net: LpipsNet, path: string, owner = 'metric/lpips'): Lpips {
    const file = readSafetensors(path);
    const m = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, e] of file.tensors) m.set(k, { shape: e.shape, data: toFloat32(e) });
    return new Lpips(net, m, path, owner);
  }

  dispose(): void {
    for (const t of this.w.values()) t.dispose();
    this.w.clear();
  }

  private conv(x: tf.Tensor4D, name: string, stride: number, pad: number): tf.Tensor4D {
    const padded = pad > 0 ? tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) : x;
    const y = tf.conv2d(padded, this.w.get(`${name}.weight`) as tf.Tensor4D, stride, 'valid');
    return tf.relu(tf.add(y, this.w.get(`${name}.bias`)!));
  }

  private pool(x: tf.Tensor4D, k: number, s: number, ceil: boolean): tf.Tensor4D {
    if (ceil) {
      // PyTorch ceil_mode: one more window where it still starts inside the input
      const [, h, w] = x.shape;
      const extra = (n: number) => (Math.ceil((n - k) / s) + 1 - 1) * s + k - n;
      const eh = Math.max(0, extra(h));
      const ew = Math.max(0, extra(w));
      if (eh || ew) x = tf.pad(x, [[0, 0], [0, eh], [0, ew], [0, 0]], -3.4e38);
    }
    return tf.maxPool(x, k, s, 'valid');
  }

  /** Tapped feature maps (NHWC) of an already scaled input. */
  private features(x: tf.Tensor4D): tf.Tensor4D[] {
    const taps: tf.Tensor4D[] = [];
    for (const o of LAYOUTS[this.net]) {
      if (o.op === 'conv') x = this.conv(x, `features.${o.idx}`, o.stride, o.pad);
      else if (o.op === 'pool') x = this.pool(x, o.k, o.s, o.ceil);
      else if (o.op === 'fire') {
        const sq = this.conv(x, `features.${o.idx}.squeeze`, 1, 0);
        x = tf.concat([this.conv(sq, `features.${o.idx}.expand1x1`, 1, 0), this.conv(sq, `features.${o.idx}.expand3x3`, 1, 1)], 3);
      } else taps.push(x);
    }
    return taps;
  }

  /**
   * Distance per pair for NHWC inputs in [-1, 1] as a tensor [N], built from plain ops (no tidy)
   * so it can sit inside a gradient function (`loss/lpips`); the weights are constants.
   */
  distanceTensor(in0: tf.Tensor4D, in1: tf.Tensor4D): tf.Tensor1D {
    const shift = tf.tensor1d(SHIFT);
    const scale = tf.tensor1d(SCALE);
    const f0 = this.features(tf.div(tf.sub(in0, shift), scale));
    const f1 = this.features(tf.div(tf.sub(in1, shift), scale));
    // lpips' normalize_tensor: f / (||f|| + 1e-10). The 1e-20 under the root changes no value at
    // float32 precision but keeps the gradient finite where a pixel's features are all zero (after
    // ReLU): sqrt'(0) = inf times d(sum f^2)/df = 0 is NaN, and tfjs' ReLU gradient multiplies it
    // through (PyTorch's masks it to 0, which is what this gives).
    const unit = (f: tf.Tensor4D) => tf.div(f, tf.add(tf.sqrt(tf.add(tf.sum(tf.square(f), 3, true), 1e-20)), 1e-10));
    let total: tf.Tensor = tf.zeros([in0.shape[0]]);
    f0.forEach((a, k) => {
      const d = tf.square(tf.sub(unit(a), unit(f1[k]))) as tf.Tensor4D;
      const lin = tf.conv2d(d, this.w.get(`lin${k}.model.1.weight`) as tf.Tensor4D, 1, 'valid');
      total = tf.add(total, tf.mean(lin, [1, 2, 3]));
    });
    return total as tf.Tensor1D;
  }

  /** Distance per pair for NHWC inputs in [-1, 1]; returns one value per batch item. */
  distance(in0: tf.Tensor4D, in1: tf.Tensor4D): Float32Array {
    return tf.tidy(() => this.distanceTensor(in0, in1).dataSync() as Float32Array);
  }

  /** LPIPS of two RGB images in [0, 255] (mapped to [-1, 1] like lpips' normalize=True). */
  imageDistance(a: MetricImage, b: MetricImage): number {
    return pairDistance(a, b, (x) => tf.sub(tf.mul(x, 2 / 255), 1) as tf.Tensor4D, (x, y) => this.distance(x, y));
  }
}

/** Resolve and check a weights path at config time: a clear UserError when the file is missing. */
export function checkLpipsWeights(path: string | undefined, optionPath: string, net: string, owner = 'metric/lpips'): string {
  if (!path) throw new UserError(`${optionPath}.weights: ${owner} needs a weights file (safetensors) for net "${net}"; ${LPIPS_WEIGHTS_HINT}`);
  if (!existsSync(path)) throw new UserError(`${optionPath}.weights: no LPIPS weights at ${path}; put the safetensors file there or ${LPIPS_WEIGHTS_HINT}`);
  return path;
}
