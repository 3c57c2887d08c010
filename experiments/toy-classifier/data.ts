import { Rng } from '../../framework/api.js';

/** A seeded synthetic classification set: `classes` Gaussian blobs in `dims` dimensions. */
export interface BlobData {
  x: Float32Array;
  /** class index per sample */
  y: Int32Array;
  n: number;
  dims: number;
  classes: number;
}

/**
 * Class centres are drawn once from the seed (so train and test share them); samples are
 * centre + N(0, noise²). With centres ~N(0, spread²) per coordinate the classes overlap a
 * little, so accuracy is high but not trivially 100%.
 */
export function makeBlobs(seed: number, opts: { n: number; dims: number; classes: number; spread: number; noise: number; split: string }): BlobData {
  const centres = new Float32Array(opts.classes * opts.dims);
  Rng.derive(seed, 'toy-classifier', 'centres').fillNormal(centres, 0, opts.spread);
  const rng = Rng.derive(seed, 'toy-classifier', 'samples', opts.split);
  const x = new Float32Array(opts.n * opts.dims);
  const y = new Int32Array(opts.n);
  for (let i = 0; i < opts.n; i++) {
    const c = rng.int(0, opts.classes - 1);
    y[i] = c;
    for (let d = 0; d < opts.dims; d++) x[i * opts.dims + d] = centres[c * opts.dims + d] + rng.normal(0, opts.noise);
  }
  return { x, y, n: opts.n, dims: opts.dims, classes: opts.classes };
}

/** The sample indices of training step `step`: a seeded draw per step, so a resumed run sees the same batches. */
export function batchIndices(seed: number, step: number, n: number, batch: number): Int32Array {
  const rng = Rng.derive(seed, 'toy-classifier', 'batch', step);
  const idx = new Int32Array(batch);
  for (let i = 0; i < batch; i++) idx[i] = rng.int(0, n - 1);
  return idx;
}
