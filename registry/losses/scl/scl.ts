/**
 * The Semantic-Constraint Loss (SCL) of RASS's SCR stage on the UNet's cross-attention maps. The
 * paper's formula is not public; this is the documented design in docs/method.md, anchored on
 * TokenCompose (CVPR 2024). For every sample b, every tag target t with tokens and a mask, and every
 * selected layer l with head-averaged probabilities P [B, Nq, Nk]:
 *
 *   A     = mean over the tag's token positions k of P[b, :, k]        (a tag the byte-level tokenizer
 *           splits into many tokens gets the mean of their maps; one map per tag, not per token;
 *           both terms below are invariant to A's scale, so mean and sum give the same loss)
 *   (h,w) = the factorisation h*w = Nq whose h/w is closest to the image's height/width (log ratio)
 *   M     = the binary mask area-averaged to (h, w) -- adaptive average pooling, torch's
 *           interpolate(mode='area') -- kept SOFT (the fraction of each cell covered by the tag)
 *   token = (1 - sum(A*M) / max(sum(A), 1e-12))^2
 *   pixel = mean over the h*w cells of BCE(p, M), p = eps + (1 - 2 eps) * A / max(max(A), 1e-12),
 *           eps = 1e-3, BCE(p, m) = -(m log p + (1 - m) log(1 - p))
 *
 * Normalising by the map's maximum makes the pixel term about WHERE the tag attends, not how much
 * probability mass the tag token takes from the others (the token term covers that). The affine
 * squeeze into [eps, 1 - eps] keeps BCE finite at the maximum (A / max(A) = 1 exactly there, and a
 * soft mask is rarely 1 at that cell) without clamping, which would cut the gradient of every cell
 * that reaches the bound. eps bounds a cell's BCE by -log(eps) ~ 6.9 and its gradient by ~1/eps:
 * 1e-4 made the term stiff enough that float32 cancellation at the peak cell (its direct gradient
 * against the one through max(A), each ~1/eps) cost 1e-4 relative gradient accuracy.
 *
 * total = token_weight * sum_i r_i token_i + pixel_weight * sum_i r_i pixel_i over the (sample, tag,
 * layer) triples i, with r_i from `reduction`: `mean` 1 / #triples; `sample-mean` the mean over
 * each sample's tags and layers, then over the samples that have a target; `sum` 1. Tags without
 * a class (AttentionSample.unmatched), targets whose tokens were all cut off by the prompt length
 * limit, and targets whose mask is empty (a tagging model's tag for a class absent from this image:
 * nothing to attend to, the token term would be a constant 1) are left out and counted as
 * unmatched. With no target in the batch the loss is 0, still connected to the attention maps so
 * their gradient is zeros rather than missing. Exact ties at max(A): tfjs routes the max's
 * gradient to every tied cell where torch.amax splits it; nothing else depends on the backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../../../framework/api.js';
import type { AttentionLoss, AttentionSample, LossResult } from '../../../framework/api.js';

export type SclReduction = 'mean' | 'sample-mean' | 'sum';

export interface SclOptions {
  /** Full-match regexes of the attention layers the loss reads. */
  layers: readonly string[];
  tokenWeight: number;
  pixelWeight: number;
  reduction: SclReduction;
}

/** Margin of the pixel term's normalisation: p lies in [SCL_PIXEL_EPS, 1 - SCL_PIXEL_EPS]. */
export const SCL_PIXEL_EPS = 1e-3;
/** Floor of the sums and maxima that divide (attention probabilities are > 0; padding is 0). */
export const SCL_TINY = 1e-12;

/** The (h, w) grid of Nq image tokens for an image of height x width: h*w = nq, h/w closest to height/width. */
export function attentionGrid(nq: number, height: number, width: number): { h: number; w: number } {
  const want = Math.log(height / width);
  let best = { h: 1, w: nq };
  let bestErr = Infinity;
  for (let h = 1; h <= nq; h++) {
    if (nq % h) continue;
    const err = Math.abs(Math.log(h / (nq / h)) - want);
    if (err < bestErr - 1e-12) {
      bestErr = err;
      best = { h, w: nq / h };
    }
  }
  return best;
}

/**
 * Area-average a HW binary mask to (h, w) like torch's adaptive_avg_pool2d (interpolate mode 'area'):
 * output cell (i, j) averages rows floor(i H / h) .. ceil((i + 1) H / h) - 1 and the same for columns.
 */
export function areaResize(mask: Uint8Array, H: number, W: number, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let i = 0; i < h; i++) {
    const r0 = Math.floor((i * H) / h);
    const r1 = Math.ceil(((i + 1) * H) / h);
    for (let j = 0; j < w; j++) {
      const c0 = Math.floor((j * W) / w);
      const c1 = Math.ceil(((j + 1) * W) / w);
      let s = 0;
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) s += mask[r * W + c] ? 1 : 0;
      out[i * w + j] = s / ((r1 - r0) * (c1 - c0));
    }
  }
  return out;
}

/** Compile full-match patterns; a bad one is a UserError naming its option path. */
export function compileLayerPatterns(patterns: readonly string[], optionPath: string): RegExp[] {
  return patterns.map((p, i) => {
    try {
      return new RegExp(`^(?:${p})$`);
    } catch (e) {
      throw new UserError(`${optionPath}[${i}]: "${p}" is not a valid regular expression (${(e as Error).message})`);
    }
  });
}

interface Target {
  sample: number;
  slot: number;
  tokens: readonly number[];
  mask: Uint8Array;
}

export class SemanticConstraintLoss implements AttentionLoss {
  readonly type = 'scl';
  readonly layers: readonly string[];
  private readonly patterns: RegExp[];

  constructor(readonly o: SclOptions, optionPath = 'loss/scl.layers') {
    this.layers = [...o.layers];
    this.patterns = compileLayerPatterns(o.layers, optionPath);
  }

  /** The captured layers this loss reads, in the map's order; every pattern must match one. */
  selectLayers(names: readonly string[]): string[] {
    this.patterns.forEach((re, i) => {
      if (!names.some((n) => re.test(n))) {
        throw new UserError(`loss/scl: layer pattern "${this.o.layers[i]}" matches no captured attention layer (captured: ${names.length ? names.join(', ') : 'none'})`);
      }
    });
    return names.filter((n) => this.patterns.some((re) => re.test(n)));
  }

  compute(attention: ReadonlyMap<string, tf.Tensor>, samples: readonly AttentionSample[]): LossResult & { readonly matched: number; readonly unmatched: number } {
    const layers = this.selectLayers([...attention.keys()]);
    const targets: Target[] = [];
    const perSample = samples.map(() => 0);
    let unmatched = 0;
    samples.forEach((s, b) => {
      unmatched += s.unmatched.length;
      for (const t of s.targets) {
        if (t.mask.length !== s.height * s.width) throw new RangeError(`loss/scl: mask of tag "${t.tag}" has ${t.mask.length} values for a ${s.height}x${s.width} image`);
        if (t.tokens.length === 0 || !t.mask.some((v) => v !== 0)) {
          unmatched++; // every token cut off by the prompt length limit, or no pixel of the tag: nothing to constrain
          continue;
        }
        targets.push({ sample: b, slot: perSample[b]++, tokens: t.tokens, mask: t.mask });
      }
    });
    const matched = targets.length;
    if (matched === 0) {
      // zero, but still a function of the maps: gradients come back as zeros, never as "no path"
      const zero = () => (layers.length ? (tf.addN(layers.map((l) => tf.mul(tf.sum(attention.get(l) as tf.Tensor), 0))) as tf.Scalar) : tf.scalar(0));
      return { total: zero(), terms: { scl_token: zero(), scl_pixel: zero() }, matched, unmatched };
    }
    const B = samples.length;
    const K = Math.max(...perSample);
    const L = layers.length;
    const withTargets = perSample.filter((n) => n > 0).length;
    const r = new Float32Array(B * K);
    for (const t of targets) {
      const i = t.sample * K + t.slot;
      if (this.o.reduction === 'mean') r[i] = 1 / (matched * L);
      else if (this.o.reduction === 'sample-mean') r[i] = 1 / (withTargets * perSample[t.sample] * L);
      else r[i] = 1;
    }
    // Every layer's tag maps go into one [L*B, Nmax, K] tensor (maps of coarser layers zero-padded to
    // the finest layer's Nq, padding cells masked out of the pixel term), so the loss is ~25 ops
    // whatever the number of layers, instead of ~20 per layer: on the native backend per-op
    // dispatch, not arithmetic, is what these small tensors cost.
    const shapes = layers.map((name) => {
      const P = attention.get(name) as tf.Tensor;
      if (P.rank !== 3 || P.shape[0] !== B) throw new RangeError(`loss/scl: attention "${name}" has shape ${JSON.stringify(P.shape)}, expected [${B}, Nq, Nk]`);
      return { name, P: P as tf.Tensor3D, Nq: P.shape[1] as number, Nk: P.shape[2] as number };
    });
    const Nmax = Math.max(...shapes.map((x) => x.Nq));
    const masks = new Float32Array(L * B * Nmax * K);
    const valid = new Float32Array(L * B * Nmax);
    const rPix = new Float32Array(L * B * K);
    const rTok = new Float32Array(L * B * K);
    const combs = new Map<number, tf.Tensor3D>();
    const resized = new Map<string, Float32Array>();
    const maps: tf.Tensor[] = [];
    shapes.forEach(({ name, P, Nq, Nk }, l) => {
      // token-combination weights [B, Nk, K]: 1/|tokens| at the tag's positions (one per prompt length)
      let comb = combs.get(Nk);
      if (!comb) {
        const c = new Float32Array(B * Nk * K);
        for (const t of targets) {
          for (const k of t.tokens) {
            if (!Number.isInteger(k) || k < 0 || k >= Nk) throw new RangeError(`loss/scl: token position ${k} outside the ${Nk} prompt tokens of "${name}"`);
            c[(t.sample * Nk + k) * K + t.slot] += 1 / t.tokens.length;
          }
        }
        comb = tf.tensor3d(c, [B, Nk, K]);
        combs.set(Nk, comb);
      }
      const A = tf.matMul(P, comb); // [B, Nq, K]
      maps.push(Nq < Nmax ? tf.pad(A, [[0, 0], [0, Nmax - Nq], [0, 0]]) : A);
      for (let b = 0; b < B; b++) valid.fill(1, (l * B + b) * Nmax, (l * B + b) * Nmax + Nq);
      for (const t of targets) {
        const s = samples[t.sample];
        const { h, w } = attentionGrid(Nq, s.height, s.width);
        const key = `${t.sample}/${t.slot}/${h}x${w}`;
        let m = resized.get(key);
        if (!m) resized.set(key, (m = areaResize(t.mask, s.height, s.width, h, w)));
        const row = l * B + t.sample;
        for (let q = 0; q < Nq; q++) masks[(row * Nmax + q) * K + t.slot] = m[q];
        rTok[row * K + t.slot] = r[t.sample * K + t.slot];
        rPix[row * K + t.slot] = r[t.sample * K + t.slot] / Nq; // the pixel term is a mean over this layer's cells
      }
    });
    const A = maps.length === 1 ? maps[0] : tf.concat(maps, 0); // [L*B, Nmax, K]
    const M = tf.tensor3d(masks, [L * B, Nmax, K]);
    const mass = tf.maximum(tf.sum(A, 1), SCL_TINY); // [L*B, K]
    const inside = tf.sum(tf.mul(A, M), 1);
    const token = tf.square(tf.sub(1, tf.div(inside, mass)));
    const peak = tf.maximum(tf.max(A, 1, true), SCL_TINY); // [L*B, 1, K]; padding cells are 0 <= any probability
    const squeeze = (x: tf.Tensor) => tf.add(tf.mul(tf.div(x, peak), 1 - 2 * SCL_PIXEL_EPS), SCL_PIXEL_EPS);
    const p = squeeze(A);
    // 1 - p written as eps + (1 - 2 eps)(peak - A)/peak: the same number, but `1 - p` in float32
    // loses ~1e-3 of 1 - p near the peak (where 1 - p ~ eps), and with it the BCE gradient's precision
    const notP = squeeze(tf.sub(peak, A));
    const bce = tf.mul(tf.add(tf.mul(M, tf.log(p)), tf.mul(tf.sub(1, M), tf.log(notP))), tf.tensor3d(valid, [L * B, Nmax, 1]));
    const scl_token = tf.mul(tf.sum(tf.mul(token, tf.tensor2d(rTok, [L * B, K]))), this.o.tokenWeight) as tf.Scalar;
    const scl_pixel = tf.mul(tf.sum(tf.mul(tf.sum(bce, 1), tf.tensor2d(rPix, [L * B, K]))), -this.o.pixelWeight) as tf.Scalar;
    return { total: tf.add(scl_token, scl_pixel), terms: { scl_token, scl_pixel }, matched, unmatched };
  }
}
