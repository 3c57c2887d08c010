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
 *
 * Two stages, so the loss records into a compiled training step (engine compileStep bakes every
 * tensor made from JS values into the program): `prepare` (JS, before the step) turns the targets
 * into fixed-shape tensors -- token-averaging weights, the soft masks of every selected layer, the
 * r_i -- with K = `max_tags` tag slots per sample whatever the batch holds (empty slots weigh 0;
 * a sample with more usable targets than max_tags is a UserError, not a silent drop), and
 * counts matched/unmatched; `computePrepared` is the vectorised math above on those tensors (no
 * loop over tags, no host read). `compute` is the two in a row, so eager and compiled steps and
 * the PyTorch parity fixtures all run the same arithmetic.
 */
import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../../../framework/api.js';
import type { AttentionLoss, AttentionSample, AttentionShapes, LossResult, PreparedAttentionTargets } from '../../../framework/api.js';

export type SclReduction = 'mean' | 'sample-mean' | 'sum';

export interface SclOptions {
  /** Full-match regexes of the attention layers the loss reads. */
  layers: readonly string[];
  tokenWeight: number;
  pixelWeight: number;
  reduction: SclReduction;
  /** Tag slots per sample in the prepared tensors (default SCL_MAX_TAGS); a sample with more usable targets is a UserError. */
  maxTags?: number;
}

/** Margin of the pixel term's normalisation: p lies in [SCL_PIXEL_EPS, 1 - SCL_PIXEL_EPS]. */
export const SCL_PIXEL_EPS = 1e-3;
/** Default tag slots per sample (`max_tags`): the prepared tensors' K, fixed so a compiled step's program never changes. */
export const SCL_MAX_TAGS = 16;
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
  readonly maxTags: number;
  private readonly patterns: RegExp[];

  /** `path`: the loss's config path, for UserErrors naming its options (`<path>.layers`, `<path>.max_tags`). */
  constructor(readonly o: SclOptions, private readonly path = 'loss/scl') {
    this.layers = [...o.layers];
    this.maxTags = o.maxTags ?? SCL_MAX_TAGS;
    if (!Number.isInteger(this.maxTags) || this.maxTags < 1) throw new UserError(`${path}.max_tags: expected an integer >= 1, got ${this.maxTags}`);
    this.patterns = compileLayerPatterns(o.layers, `${path}.layers`);
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

  /** prepare + computePrepared: the eager entry point runs the same arithmetic a compiled step does. */
  compute(attention: ReadonlyMap<string, tf.Tensor>, samples: readonly AttentionSample[]): LossResult & { readonly matched: number; readonly unmatched: number } {
    const shapes = new Map<string, [number, number, number]>();
    for (const [name, P] of attention) shapes.set(name, P.shape as [number, number, number]);
    const prep = this.prepare(samples, shapes);
    return { ...this.computePrepared(attention, prep.tensors), matched: prep.matched, unmatched: prep.unmatched };
  }

  /**
   * The batch's targets as fixed-shape tensors (K = max_tags slots per sample, L selected layers,
   * Nmax = the largest selected Nq, B samples):
   *   `comb/<Nk>` [B, Nk, K]    token-averaging weights: 1/|tokens| at the tag's prompt positions
   *   `masks`     [L*B, Nmax, K] each tag's mask area-resized to each layer's grid (0 beyond Nq)
   *   `valid`     [L*B, Nmax, 1] 1 on a layer's Nq cells, 0 on the padding of coarser layers
   *   `r_token`   [L*B, K]       the reduction weight r_i of each (sample, tag, layer) triple
   *   `r_pixel`   [L*B, K]       r_i / Nq (the pixel term is a mean over the layer's cells)
   * Empty slots have zero weights, so they add exactly 0 to the value and the gradient.
   */
  prepare(samples: readonly AttentionSample[], shapes: AttentionShapes): PreparedAttentionTargets {
    const layers = this.selectLayers([...shapes.keys()]);
    const B = samples.length;
    const K = this.maxTags;
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
      // K is part of the compiled program's shapes: it cannot grow with the batch, and silently
      // dropping tags would change the loss without a trace
      if ((perSample[b] as number) > K) {
        throw new UserError(`${this.path}.max_tags: a sample has ${perSample[b]} tags with a mask (${s.targets.map((t) => t.tag).join(', ')}), more than max_tags = ${K}; raise max_tags`);
      }
    });
    const matched = targets.length;
    const L = layers.length;
    const withTargets = perSample.filter((n) => n > 0).length;
    const r = new Float32Array(B * K);
    for (const t of targets) {
      const i = t.sample * K + t.slot;
      if (this.o.reduction === 'mean') r[i] = 1 / (matched * L);
      else if (this.o.reduction === 'sample-mean') r[i] = 1 / (withTargets * (perSample[t.sample] as number) * L);
      else r[i] = 1;
    }
    const dims = layers.map((name) => {
      const shape = shapes.get(name) as readonly number[];
      if (shape.length !== 3 || shape[0] !== B) throw new RangeError(`loss/scl: attention "${name}" has shape ${JSON.stringify(shape)}, expected [${B}, Nq, Nk]`);
      return { name, Nq: shape[1] as number, Nk: shape[2] as number };
    });
    const Nmax = Math.max(...dims.map((x) => x.Nq));
    const masks = new Float32Array(L * B * Nmax * K);
    const valid = new Float32Array(L * B * Nmax);
    const rPix = new Float32Array(L * B * K);
    const rTok = new Float32Array(L * B * K);
    const tensors: Record<string, tf.Tensor> = {};
    const resized = new Map<string, Float32Array>();
    dims.forEach(({ name, Nq, Nk }, l) => {
      if (!tensors[`comb/${Nk}`]) {
        const c = new Float32Array(B * Nk * K);
        for (const t of targets) {
          for (const k of t.tokens) {
            if (!Number.isInteger(k) || k < 0 || k >= Nk) throw new RangeError(`loss/scl: token position ${k} outside the ${Nk} prompt tokens of "${name}"`);
            c[(t.sample * Nk + k) * K + t.slot] += 1 / t.tokens.length;
          }
        }
        tensors[`comb/${Nk}`] = tf.tensor3d(c, [B, Nk, K]);
      }
      for (let b = 0; b < B; b++) valid.fill(1, (l * B + b) * Nmax, (l * B + b) * Nmax + Nq);
      for (const t of targets) {
        const s = samples[t.sample] as AttentionSample;
        const { h, w } = attentionGrid(Nq, s.height, s.width);
        const key = `${t.sample}/${t.slot}/${h}x${w}`;
        let m = resized.get(key);
        if (!m) resized.set(key, (m = areaResize(t.mask, s.height, s.width, h, w)));
        const row = l * B + t.sample;
        for (let q = 0; q < Nq; q++) masks[(row * Nmax + q) * K + t.slot] = m[q] as number;
        rTok[row * K + t.slot] = r[t.sample * K + t.slot] as number;
        rPix[row * K + t.slot] = (r[t.sample * K + t.slot] as number) / Nq;
      }
    });
    tensors.masks = tf.tensor3d(masks, [L * B, Nmax, K]);
    tensors.valid = tf.tensor3d(valid, [L * B, Nmax, 1]);
    tensors.r_token = tf.tensor2d(rTok, [L * B, K]);
    tensors.r_pixel = tf.tensor2d(rPix, [L * B, K]);
    return { tensors, matched, unmatched };
  }

  /**
   * The loss from `prepare`'s tensors: ~25 ops whatever the number of layers and tags (no loop
   * over tags, no host read), so it records into a compiled step. Every layer's tag maps go into
   * one [L*B, Nmax, K] tensor, coarser layers zero-padded to the finest layer's Nq (padding cells
   * masked out of the pixel term): on the native backend per-op dispatch, not arithmetic, is
   * what these small tensors cost.
   */
  computePrepared(attention: ReadonlyMap<string, tf.Tensor>, prepared: Readonly<Record<string, tf.Tensor>>): LossResult {
    const layers = this.selectLayers([...attention.keys()]);
    const M = prepared.masks as tf.Tensor3D;
    const [LB, Nmax, K] = M.shape;
    const B = LB / layers.length;
    const maps = layers.map((name) => {
      const P = attention.get(name) as tf.Tensor3D;
      const comb = prepared[`comb/${P.shape[2]}`];
      if (P.rank !== 3 || P.shape[0] !== B || P.shape[1] > Nmax || !comb || comb.shape[2] !== K) {
        throw new RangeError(`loss/scl: attention "${name}" has shape ${JSON.stringify(P.shape)}, not the [${B}, <=${Nmax}, Nk] its targets were prepared for`);
      }
      const A = tf.matMul(P, comb as tf.Tensor3D); // [B, Nq, K]
      return P.shape[1] < Nmax ? tf.pad(A, [[0, 0], [0, Nmax - P.shape[1]], [0, 0]]) : A;
    });
    const A = maps.length === 1 ? (maps[0] as tf.Tensor) : tf.concat(maps, 0); // [L*B, Nmax, K]
    const mass = tf.maximum(tf.sum(A, 1), SCL_TINY); // [L*B, K]
    const inside = tf.sum(tf.mul(A, M), 1);
    const token = tf.square(tf.sub(1, tf.div(inside, mass)));
    const peak = tf.maximum(tf.max(A, 1, true), SCL_TINY); // [L*B, 1, K]; padding cells are 0 <= any probability
    const squeeze = (x: tf.Tensor) => tf.add(tf.mul(tf.div(x, peak), 1 - 2 * SCL_PIXEL_EPS), SCL_PIXEL_EPS);
    const p = squeeze(A);
    // 1 - p written as eps + (1 - 2 eps)(peak - A)/peak: the same number, but `1 - p` in float32
    // loses ~1e-3 of 1 - p near the peak (where 1 - p ~ eps), and with it the BCE gradient's precision
    const notP = squeeze(tf.sub(peak, A));
    const bce = tf.mul(tf.add(tf.mul(M, tf.log(p)), tf.mul(tf.sub(1, M), tf.log(notP))), prepared.valid as tf.Tensor);
    // empty slots (and a batch without targets) have r = 0: their terms are finite (mass and peak
    // are floored, p >= eps), so the value is exactly 0 and the maps' gradient zeros, never missing
    const scl_token = tf.mul(tf.sum(tf.mul(token, prepared.r_token as tf.Tensor)), this.o.tokenWeight) as tf.Scalar;
    const scl_pixel = tf.mul(tf.sum(tf.mul(tf.sum(bce, 1), prepared.r_pixel as tf.Tensor)), -this.o.pixelWeight) as tf.Scalar;
    return { total: tf.add(scl_token, scl_pixel), terms: { scl_token, scl_pixel } };
  }
}
