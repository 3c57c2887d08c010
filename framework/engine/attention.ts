import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op.js';
import { nativeOpsEnabled, runNativeOp, type OpAttr } from './native-ops.js';
import { recomputeGate } from './recompute-gate.js';

/**
 * Memory-efficient multi-head scaled dot-product attention.
 *
 * Plain attention keeps the [B*heads, Nq, Nk] score and probability matrices for the
 * backward pass, so a training step's memory grows with the square of the token count
 * (4,096 tokens at a 64x64 latent: 64 MiB per head and image, per layer). Here the queries
 * are processed in chunks (each chunk sees its full key row, with the numerically stable
 * max-subtracted softmax), and a custom gradient recomputes each chunk's probabilities in
 * the backward pass instead of storing them: what is kept for backward is only q, k, v
 * (and the additive mask), so memory is linear in the token count; the transient peak is
 * one chunk's [B*heads, chunk, Nk] matrices.
 *
 * Inputs and output are in the projection layout [B, N, heads * dHead]: the head split and
 * merge (reshape + transpose) happen inside, so they keep nothing for the backward either.
 */
export interface AttentionOptions {
  readonly heads: number;
  /** Score scale; default 1/sqrt(dHead). */
  readonly scale?: number;
  /** Additive mask [B*heads or 1, Nq, Nk] (index b*heads + h), e.g. -1e9 where not allowed; it carries no gradient. */
  readonly mask?: tf.Tensor3D | null;
  /**
   * Queries per chunk; 0 or absent: automatic (at most AUTO_CHUNK_SCORES scores per chunk).
   * Unused where the fused kernels run (unmasked, native): they tile by themselves.
   */
  readonly chunk?: number;
}

/** Scores per chunk in automatic mode: 2^22 floats = 16 MiB for each of the chunk's few [BH, chunk, Nk] matrices. */
export const AUTO_CHUNK_SCORES = 1 << 22;
/** Smallest automatic chunk: below this, per-chunk op overhead dominates. */
const MIN_AUTO_CHUNK = 64;

/** Queries per chunk for `bh` head-batches of `nq` queries over `nk` keys. */
export function attentionChunkSize(bh: number, nq: number, nk: number, chunk = 0): number {
  if (chunk > 0) return Math.min(Math.floor(chunk), nq);
  return Math.max(1, Math.min(nq, Math.max(MIN_AUTO_CHUNK, Math.floor(AUTO_CHUNK_SCORES / Math.max(1, bh * nk)))));
}

/** [B, N, H*d] -> [B*H, N, d]. */
export function splitHeads(t: tf.Tensor, heads: number): tf.Tensor3D {
  const [b, n, hd] = t.shape as [number, number, number];
  const d = hd / heads;
  return tf.reshape(tf.transpose(tf.reshape(t, [b, n, heads, d]), [0, 2, 1, 3]), [b * heads, n, d]);
}

/** [B*H, N, d] -> [B, N, H*d]. */
export function mergeHeads(t: tf.Tensor, heads: number): tf.Tensor3D {
  const [bh, n, d] = t.shape as [number, number, number];
  const b = bh / heads;
  return tf.reshape(tf.transpose(tf.reshape(t, [b, heads, n, d]), [0, 2, 1, 3]), [b, n, heads * d]);
}

/** softmax(qs_rows k^T + mask_rows) for query rows [start, start + n) of the pre-scaled queries qs: [BH, n, Nk]. */
function chunkProbs(qs: tf.Tensor3D, kh: tf.Tensor3D, mask: tf.Tensor3D | null, start: number, n: number, gate?: tf.Tensor): tf.Tensor3D {
  const whole = n === qs.shape[1];
  const rows = whole ? qs : tf.slice(qs, [0, start, 0], [-1, n, -1]);
  const scores = tf.matMul(gate ? tf.mul(rows, gate) : rows, kh, false, true);
  const masked = mask ? tf.add(scores, whole ? mask : tf.slice(mask, [0, start, 0], [-1, n, -1])) : scores;
  const p = tf.softmax(masked, -1) as tf.Tensor3D;
  // free the chunk-sized intermediates now rather than at the end of the caller's tidy
  if (masked !== scores) masked.dispose();
  scores.dispose();
  return p;
}

function checkShapes(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, o: AttentionOptions): void {
  const bad = (why: string) => new Error(`attention: ${why} (q ${JSON.stringify(q.shape)}, k ${JSON.stringify(k.shape)}, v ${JSON.stringify(v.shape)}, heads ${o.heads})`);
  if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3) throw bad('q, k, v must be [B, N, heads*dim]');
  if (q.shape[0] !== k.shape[0] || k.shape[0] !== v.shape[0] || k.shape[1] !== v.shape[1]) throw bad('batch or key counts differ');
  if (q.shape[2] !== k.shape[2] || (q.shape[2] as number) % o.heads !== 0 || (v.shape[2] as number) % o.heads !== 0) throw bad('channels are not heads x dim');
}

/**
 * softmax(q k^T * scale + mask) v per head, chunked over queries, with a recomputing
 * gradient (see the file comment). q: [B, Nq, H*d], k: [B, Nk, H*d], v: [B, Nk, H*dv]
 * -> [B, Nq, H*dv]. Gradients flow to q, k and v.
 */
export function memoryEfficientAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, opts: AttentionOptions): tf.Tensor3D {
  checkShapes(q, k, v, opts);
  const heads = opts.heads;
  const scale = opts.scale ?? 1 / Math.sqrt((q.shape[2] as number) / heads);
  const mask = opts.mask ?? null;
  if (!mask && nativeOpsEnabled()) return fusedAttention(q, k, v, heads, scale);
  const kernel = customOp(([qIn, kIn, vIn], save) => {
    if (!qIn || !kIn || !vIn) throw new Error('attention: needs q, k, v');
    const [b, nq] = qIn.shape as [number, number];
    const nk = kIn.shape[1] as number;
    const c = attentionChunkSize(b * heads, nq, nk, opts.chunk);
    // Small enough for one automatic chunk (at most AUTO_CHUNK_SCORES scores): keep the
    // probabilities for the backward instead of recomputing them. It costs at most one chunk's
    // memory and saves the recompute, which a compiled step otherwise pays in full (the
    // recompute there runs after its gradient arrives, recompute-gate.ts): cross-attention over
    // 77 prompt tokens, small latents, Mask2Former's masked attention.
    const keepProbs = !(opts.chunk && opts.chunk > 0) && c >= nq && b * heads * nq * nk <= AUTO_CHUNK_SCORES;
    let probs: tf.Tensor3D | null = null;
    const value = tf.tidy(() => {
      // the scale goes on the queries ([BH, Nq, d]), not on every score
      const qs = tf.mul(splitHeads(qIn, heads), scale) as tf.Tensor3D;
      const kh = splitHeads(kIn, heads);
      const vh = splitHeads(vIn, heads);
      const outs: tf.Tensor[] = [];
      if (keepProbs) {
        probs = tf.keep(chunkProbs(qs, kh, mask, 0, nq));
        outs.push(tf.matMul(probs, vh));
      } else {
        for (let s = 0; s < nq; s += c) {
          const n = Math.min(c, nq - s);
          outs.push(tf.tidy(() => tf.matMul(chunkProbs(qs, kh, mask, s, n), vh)));
        }
      }
      return mergeHeads(outs.length === 1 ? (outs[0] as tf.Tensor) : tf.concat(outs, 1), heads);
    });
    // The output is kept (linear in tokens) for the backward's rowsum(dO * O); the mask too,
    // as the caller's tidy may dispose it before the backward runs.
    const kept = probs as tf.Tensor3D | null;
    save([qIn, kIn, vIn, value, ...(mask ? [mask] : []), ...(kept ? [kept] : [])]);
    // the saved clone holds the probabilities now; this handle is ours to free
    kept?.dispose();
    return {
      value,
      gradFunc: (dy, saved) => attentionBackward(dy, saved, heads, scale, c, mask !== null, kept !== null),
    };
  });
  return kernel(q, k, v) as tf.Tensor3D;
}

/**
 * The same attention as one TensorFlow kernel each way (native/ops/attention.cc, loaded by
 * native-ops.ts): FlashAttention-2 on the CPU, scores only ever in an L2-sized tile, the
 * backward recomputing them from the saved log-sum-exp; q, k, v stay in the [B, N, H*d]
 * layout (no head split or merge). The saved tensors are q, k, v, the output and the
 * log-sum-exp [B, H, Nq]: linear in the token count, as the chunked form, with no chunk to
 * choose. Unmasked attention only (a masked call takes the composite path).
 */
function fusedAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, heads: number, scale: number): tf.Tensor3D {
  const attrs: OpAttr[] = [
    { name: 'heads', kind: 'int', value: heads },
    { name: 'scale', kind: 'float', value: scale },
  ];
  const kernel = customOp(([qIn, kIn, vIn], save) => {
    if (!qIn || !kIn || !vIn) throw new Error('attention: needs q, k, v');
    const [out, lse] = runNativeOp('RassAttention', attrs, [qIn, kIn, vIn], 2) as [tf.Tensor, tf.Tensor];
    save([qIn, kIn, vIn, out, lse]);
    // the saved clone holds the log-sum-exp now
    lse.dispose();
    return { value: out, gradFunc: (dy, saved) => runNativeOp('RassAttentionGrad', attrs, [...saved, dy], 3) };
  });
  return kernel(q, k, v) as tf.Tensor3D;
}

/**
 * Per query chunk, with P recomputed: dV += P^T dO, dP = dO V^T, dS = P (dP - D) with
 * D = rowsum(dO O) (= rowsum(dP P), on [BH, Nq, dv] instead of [BH, Nq, Nk]),
 * dQ = dS K scale, dK += dS^T (Q scale). Only dK/dV accumulators and one chunk's matrices live at once.
 */
function attentionBackward(dy: tf.Tensor, saved: tf.Tensor[], heads: number, scale: number, c: number, hasMask: boolean, hasProbs: boolean): tf.Tensor[] {
  const [q, k, v, out] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  const mask = hasMask ? (saved[4] as tf.Tensor3D) : null;
  const keptProbs = hasProbs ? (saved[hasMask ? 5 : 4] as tf.Tensor3D) : null;
  return tf.tidy(() => {
    const qs = tf.mul(splitHeads(q, heads), scale) as tf.Tensor3D;
    const kh = splitHeads(k, heads);
    const vh = splitHeads(v, heads);
    const doh = splitHeads(dy, heads);
    const rowDots = tf.sum(tf.mul(doh, splitHeads(out, heads)), -1, true);
    const nq = qs.shape[1];
    let dk: tf.Tensor | null = null;
    let dv: tf.Tensor | null = null;
    const dqs: tf.Tensor[] = [];
    for (let s = 0; s < nq; s += c) {
      const n = Math.min(c, nq - s);
      const rows = (t: tf.Tensor) => (n === nq ? t : tf.slice(t, [0, s, 0], [-1, n, -1]));
      const [dqc, dkNext, dvNext] = tf.tidy(() => {
        const doc = rows(doh);
        // recomputed, gated for linear memory when compiled (recompute-gate.ts), unless kept
        const p = keptProbs ?? chunkProbs(qs, kh, mask, s, n, recomputeGate(doc) ?? undefined);
        const dvc = tf.matMul(p, doc, true, false);
        const dp = tf.matMul(doc, vh, false, true);
        const centred = tf.sub(dp, rows(rowDots));
        dp.dispose();
        const ds = tf.mul(p, centred);
        centred.dispose();
        if (p !== keptProbs) p.dispose();
        const dkc = tf.matMul(ds, rows(qs), true, false);
        return [tf.mul(tf.matMul(ds, kh), scale), dk ? tf.add(dk, dkc) : dkc, dv ? tf.add(dv, dvc) : dvc];
      });
      dk?.dispose();
      dv?.dispose();
      dk = dkNext as tf.Tensor;
      dv = dvNext as tf.Tensor;
      dqs.push(dqc as tf.Tensor);
    }
    const dq = dqs.length === 1 ? (dqs[0] as tf.Tensor) : tf.concat(dqs, 1);
    return [mergeHeads(dq, heads), mergeHeads(dk as tf.Tensor, heads), mergeHeads(dv as tf.Tensor, heads)];
  });
}

/**
 * The plain form (scores and probabilities as ordinary ops, differentiable through tfjs'
 * own gradients): the reference the tests compare against, and the path for layers whose
 * probabilities are captured (`probs` gets the [B*H, Nq, Nk] map, which stays on the tape).
 */
export function plainAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, opts: AttentionOptions, probs?: (p: tf.Tensor3D) => void): tf.Tensor3D {
  checkShapes(q, k, v, opts);
  const heads = opts.heads;
  const scale = opts.scale ?? 1 / Math.sqrt((q.shape[2] as number) / heads);
  // scaled on the queries as the chunked kernel does, so both give the same values
  const qs = tf.mul(splitHeads(q, heads), scale) as tf.Tensor3D;
  let s: tf.Tensor3D = tf.matMul(qs, splitHeads(k, heads), false, true);
  if (opts.mask) s = tf.add(s, opts.mask);
  const p = tf.softmax(s, -1);
  probs?.(p);
  return mergeHeads(tf.matMul(p, splitHeads(v, heads)), heads);
}
