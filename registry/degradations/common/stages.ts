/**
 * Pieces every degradation op shares: the `id` / `prob` stage options, per-stage random
 * streams, per-sample probability gates, and parameter recording.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DegradationContext, Rng } from '../../../framework/api.js';

/** Options every op accepts (the pipeline sets `id` when a stage has none). */
export const stageProperties = {
  id: { type: 'string', description: 'stage id: key of the recorded parameters and of the stage\'s random stream' },
  prob: { type: 'number', minimum: 0, maximum: 1, default: 1, description: 'probability (per sample) that the stage runs' },
} as const;

/** Range [lo, hi] schema fragment (`_min` documents the lower bound; checked where used). */
export function rangeSchema(description: string, _min?: number) {
  void _min;
  return { type: 'array', minItems: 2, maxItems: 2, description, items: { type: 'number' } } as const;
}

export function stageRngs(ctx: DegradationContext, id: string): Rng[] {
  return ctx.rng.map((r) => r.fork(id));
}

export function record(ctx: DegradationContext, i: number, id: string, params: unknown): void {
  if (ctx.record) ctx.record[i][id] = params;
}

/**
 * Run `fn` on the samples whose gate (drawn from their own stream) opens. `fn` gets the
 * sub-batch of active samples, their streams and indices, and returns the output sub-batch plus
 * one parameter record per active sample. Samples whose gate is closed pass through unchanged.
 */
export async function gated(
  batch: tf.Tensor4D, ctx: DegradationContext, id: string, prob: number,
  fn: (x: tf.Tensor4D, rngs: Rng[], idx: number[]) => Promise<{ out: tf.Tensor4D; params: unknown[] }>,
): Promise<tf.Tensor4D> {
  const n = batch.shape[0];
  if (ctx.rng.length !== n) throw new RangeError(`degradation ${id}: ${ctx.rng.length} random streams for a batch of ${n}`);
  const rngs = stageRngs(ctx, id);
  const active: number[] = [];
  for (let i = 0; i < n; i++) {
    // always draw, so the stage's later draws do not depend on whether prob is 1
    const open = rngs[i].random() < prob;
    if (open) active.push(i);
    else record(ctx, i, id, { applied: false });
  }
  if (active.length === 0) return batch;
  if (active.length === n) {
    const { out, params } = await fn(batch, rngs, active);
    params.forEach((p, k) => record(ctx, active[k], id, p));
    return out;
  }
  const sub = tf.gather(batch, active);
  const { out, params } = await fn(sub as tf.Tensor4D, active.map((i) => rngs[i]), active);
  params.forEach((p, k) => record(ctx, active[k], id, p));
  if (out.shape.slice(1).join() !== batch.shape.slice(1).join()) {
    tf.dispose([sub, out]);
    throw new RangeError(`degradation ${id}: a partly gated batch must keep its shape (run samples one at a time)`);
  }
  const parts: tf.Tensor[] = [];
  const merged = tf.tidy(() => {
    let k = 0;
    for (let i = 0; i < n; i++) parts.push(active.includes(i) ? tf.slice(out, [k++, 0, 0, 0], [1, -1, -1, -1]) : tf.slice(batch, [i, 0, 0, 0], [1, -1, -1, -1]));
    return tf.concat(parts, 0) as tf.Tensor4D;
  });
  if (out !== sub) out.dispose();
  sub.dispose();
  return merged;
}

/** Read a sample's HWC data out of a batch. */
export function sampleData(x: tf.Tensor4D): Float32Array[] {
  const [n, h, w, c] = x.shape;
  const all = x.dataSync() as Float32Array;
  const per = h * w * c;
  return Array.from({ length: n }, (_, i) => all.subarray(i * per, (i + 1) * per));
}
