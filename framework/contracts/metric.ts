/**
 * What `metric/*` plugins build: streaming metrics. Evaluation calls `reset()`, then
 * `update(batch)` per batch, then `compute()`. A split evaluation (several workers) sends
 * each worker's `state()` (plain JSON) to one metric and `merge`s them there, so the merged
 * result equals a single pass over all samples.
 */

/** A label map: H*W class indices, row-major. */
export interface LabelMap {
  readonly data: ArrayLike<number>;
  readonly height: number;
  readonly width: number;
}

/** An image: H*W*C values in [0, 255] (uint8 or float), row-major HWC, RGB channel order (C = 3) or gray (C = 1). */
export interface MetricImage {
  readonly data: ArrayLike<number>;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/** One batch. A metric reads the fields it needs and rejects a batch that lacks them. */
export interface MetricBatch {
  /** A name per sample (file name), used in per-sample rows and in error messages. */
  readonly ids?: readonly string[];
  /** Segmentation: predicted and ground-truth label maps, one per sample. */
  readonly segPred?: readonly LabelMap[];
  readonly segGt?: readonly LabelMap[];
  /** Restoration: restored images and their references, one per sample. */
  readonly restored?: readonly MetricImage[];
  readonly reference?: readonly MetricImage[];
}

export interface MetricTable {
  readonly name: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly (string | number)[])[];
}

/** Values of one sample: `id` (file) and its metric values. */
export interface PerSampleRecord {
  readonly id: string;
  readonly values: Readonly<Record<string, number>>;
}

export interface MetricResult {
  /** Flat scalars, e.g. `miou`, `iou/wall`, `psnr`. */
  readonly scalars: Readonly<Record<string, number>>;
  /** Tables written as CSV/JSON artifacts (e.g. per-class IoU). */
  readonly tables?: readonly MetricTable[];
  /** Per-sample values, in update order (for the optional per-image CSV). */
  readonly perSample?: readonly PerSampleRecord[];
}

export interface Metric<S = unknown> {
  readonly name: string;
  reset(): void;
  update(batch: MetricBatch): void;
  compute(): MetricResult;
  /** The accumulated state as plain JSON (numbers, strings, arrays, objects; no typed arrays). */
  state(): S;
  /** Add another worker's `state()` into this one. */
  merge(other: S): void;
}
