import * as tf from '@tensorflow/tfjs-core';
import { Rng, toFloat32, UserError, type readSafetensors } from '../../../framework/api.js';
import type { Backbone, ParameterHolder, TargetableLayer } from '../../../framework/api.js';
import type { FeatureLevel } from '../../../framework/api.js';

/**
 * ResNet (torchvision v1.5 Bottleneck: stride on the 3x3 conv) with torchvision's state_dict
 * key names, BatchNorm frozen to its running statistics (detectron2's FrozenBN), exposing
 * layer1..layer4 as strides 4/8/16/32 for the segmentation heads. NHWC activations, HWIO kernels.
 */
export interface ResNetConfig {
  /** Bottleneck blocks per stage (ResNet-50: [3, 4, 6, 3]; ResNet-101: [3, 4, 23, 3]). */
  layers: [number, number, number, number];
  /** Width of the first stage's 3x3 convs (64 in torchvision); stage outputs are 4x width x 2^i. */
  width: number;
}

export const RESNET_PRESETS: Record<string, ResNetConfig> = {
  resnet50: { layers: [3, 4, 6, 3], width: 64 },
  resnet101: { layers: [3, 4, 23, 3], width: 64 },
  tiny: { layers: [2, 1, 1, 1], width: 8 },
};

interface Bn {
  scale: tf.Tensor1D;
  shift: tf.Tensor1D;
  names: string[];
}

/** The tensors a torchvision ResNet state_dict holds, with their torch shapes (fc excluded). */
export function resnetKeys(cfg: ResNetConfig): Map<string, number[]> {
  const keys = new Map<string, number[]>();
  const conv = (n: string, o: number, i: number, k: number) => keys.set(`${n}.weight`, [o, i, k, k]);
  const bn = (n: string, c: number) => {
    for (const s of ['weight', 'bias', 'running_mean', 'running_var']) keys.set(`${n}.${s}`, [c]);
  };
  conv('conv1', cfg.width, 3, 7);
  bn('bn1', cfg.width);
  let inC = cfg.width;
  cfg.layers.forEach((n, s) => {
    const w = cfg.width * 2 ** s;
    for (let b = 0; b < n; b++) {
      const p = `layer${s + 1}.${b}`;
      conv(`${p}.conv1`, w, inC, 1);
      bn(`${p}.bn1`, w);
      conv(`${p}.conv2`, w, w, 3);
      bn(`${p}.bn2`, w);
      conv(`${p}.conv3`, w * 4, w, 1);
      bn(`${p}.bn3`, w * 4);
      if (b === 0) {
        conv(`${p}.downsample.0`, w * 4, inC, 1);
        bn(`${p}.downsample.1`, w * 4);
      }
      inC = w * 4;
    }
  });
  return keys;
}

export class ResNet implements Backbone {
  readonly type = 'resnet';
  readonly store: ParameterHolder;
  readonly outChannels: number[];
  readonly strides = [4, 8, 16, 32];
  private readonly vars = new Map<string, { variable: tf.Variable }>();
  private readonly bns = new Map<string, Bn>();

  /**
   * weights: torch-layout arrays by torchvision key (random init when absent). `trainable`
   * makes the conv kernels trainable (fine-tuning baselines); BatchNorm stays frozen.
   */
  constructor(readonly cfg: ResNetConfig, weights: Map<string, { data: Float32Array; shape: number[] }> | null, seed: number, readonly trainable = false, readonly eps = 1e-5) {
    const keys = resnetKeys(cfg);
    const values = new Map<string, Float32Array>();
    for (const [k, shape] of keys) {
      const n = shape.reduce((a, b) => a * b, 1);
      let v: Float32Array;
      if (weights) {
        const e = weights.get(k);
        if (!e) throw new UserError(`resnet weights: missing tensor "${k}"`);
        if (e.shape.join('x') !== shape.join('x')) throw new UserError(`resnet weights: "${k}" has shape [${e.shape}], expected [${shape}]`);
        v = e.data;
      } else if (k.endsWith('running_var') || (k.endsWith('.weight') && shape.length === 1)) {
        v = new Float32Array(n).fill(1);
      } else if (shape.length === 1) {
        v = new Float32Array(n);
      } else {
        // kaiming normal (fan_out, relu) as torchvision initialises convs
        v = Rng.derive(seed, 'resnet', k).fillNormal(new Float32Array(n), 0, Math.sqrt(2 / (shape[0] * shape[2] * shape[3]))) as Float32Array;
      }
      values.set(k, v);
    }
    for (const [k, shape] of keys) {
      if (shape.length !== 4) continue;
      // torch OIHW -> tfjs HWIO
      const t = tf.tidy(() => tf.transpose(tf.tensor4d(values.get(k) as Float32Array, shape as [number, number, number, number]), [2, 3, 1, 0]));
      this.vars.set(k, { variable: tf.variable(t, trainable) });
      t.dispose();
    }
    for (const k of keys.keys()) {
      if (!k.endsWith('.running_mean')) continue;
      const n = k.slice(0, -'.running_mean'.length);
      const g = values.get(`${n}.weight`) as Float32Array;
      const b = values.get(`${n}.bias`) as Float32Array;
      const m = values.get(`${n}.running_mean`) as Float32Array;
      const vv = values.get(`${n}.running_var`) as Float32Array;
      const scale = g.map((gi, i) => gi / Math.sqrt(vv[i] + eps));
      const shift = b.map((bi, i) => bi - m[i] * scale[i]);
      this.bns.set(n, { scale: tf.tensor1d(scale), shift: tf.tensor1d(shift), names: ['weight', 'bias', 'running_mean', 'running_var'].map((s) => `${n}.${s}`) });
    }
    this.store = { params: this.vars, modules: new Map<string, TargetableLayer>() };
    this.outChannels = [0, 1, 2, 3].map((s) => cfg.width * 2 ** s * 4);
  }

  private conv(x: tf.Tensor4D, name: string, stride: number): tf.Tensor4D {
    const w = (this.vars.get(`${name}.weight`) as { variable: tf.Variable }).variable as tf.Variable<tf.Rank.R4>;
    const k = w.shape[0];
    const p = (k - 1) / 2;
    // explicit zero padding + 'valid': torch's symmetric padding on every backend (native TF refuses explicit conv padding)
    return tf.conv2d(p === 0 ? x : tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]), w, stride, 'valid');
  }

  private bn(x: tf.Tensor4D, name: string): tf.Tensor4D {
    const b = this.bns.get(name) as Bn;
    return tf.add(tf.mul(x, b.scale), b.shift);
  }

  /** x: [N, H, W, 3] normalised RGB (see normalizeImageNet). Returns layer1..layer4 features. */
  features(x: tf.Tensor4D): FeatureLevel[] {
    const out = tf.tidy(() => {
      let y = tf.relu(this.bn(this.conv(x, 'conv1', 2), 'bn1'));
      // post-ReLU values are >= 0, so zero padding equals torch's -inf padding for the max pool
      y = tf.maxPool(tf.pad(y, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, 'valid');
      const feats: tf.Tensor4D[] = [];
      this.cfg.layers.forEach((n, s) => {
        for (let b = 0; b < n; b++) {
          const p = `layer${s + 1}.${b}`;
          const stride = b === 0 && s > 0 ? 2 : 1;
          let h = tf.relu(this.bn(this.conv(y, `${p}.conv1`, 1), `${p}.bn1`));
          h = tf.relu(this.bn(this.conv(h, `${p}.conv2`, stride), `${p}.bn2`));
          h = this.bn(this.conv(h, `${p}.conv3`, 1), `${p}.bn3`);
          const id = b === 0 ? this.bn(this.conv(y, `${p}.downsample.0`, stride), `${p}.downsample.1`) : y;
          y = tf.relu(tf.add(h, id));
        }
        feats.push(y);
      });
      return feats;
    });
    return out.map((f, i) => ({ stride: this.strides[i], features: f }));
  }

  dispose(): void {
    for (const v of this.vars.values()) v.variable.dispose();
    for (const b of this.bns.values()) tf.dispose([b.scale, b.shift]);
    this.vars.clear();
    this.bns.clear();
  }
}

/** uint8 HWC RGB batch -> torchvision's ImageNet normalisation ((x/255 - mean) / std). */
export function normalizeImageNet(images: Uint8Array, n: number, h: number, w: number): tf.Tensor4D {
  return tf.tidy(() => {
    const x = tf.div(tf.tensor4d(images, [n, h, w, 3], 'float32'), 255);
    return tf.div(tf.sub(x, tf.tensor1d([0.485, 0.456, 0.406])), tf.tensor1d([0.229, 0.224, 0.225]));
  });
}

/** Torch-layout weights from a safetensors file (a torchvision state_dict saved with safetensors). */
export function weightsFromSafetensors(f: ReturnType<typeof readSafetensors>, prefix = ''): Map<string, { data: Float32Array; shape: number[] }> {
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [k, e] of f.tensors) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), { data: toFloat32(e), shape: e.shape });
  return out;
}
