import { Rng, UserError } from '../../framework/api.js';
import type { SegDataset, SegSample } from '../../framework/contracts/dataset.js';
import { augment, type AugmentOptions } from './augment.js';

/** A batch of equally sized samples: NHWC uint8 images, NHW labels (ignore where a sample has none). */
export interface SegBatch {
  readonly ids: string[];
  readonly indices: number[];
  readonly height: number;
  readonly width: number;
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly tags: string[][];
}

export interface LoaderOptions {
  batchSize: number;
  shuffle?: boolean;
  dropLast?: boolean;
  seed: number;
  augment?: AugmentOptions;
  /** Batches decoded ahead of the consumer (image decoding runs in sharp's libuv threads meanwhile). */
  prefetch?: number;
}

/**
 * Batching, seeded per-epoch order and per-sample augmentation. Order comes from
 * Rng.derive(seed, 'data', epoch); a sample's augmentation from Rng.derive(seed, 'aug', epoch,
 * index), so results do not depend on prefetch depth or on which thread did the work.
 */
export class SegLoader {
  constructor(readonly dataset: SegDataset, readonly o: LoaderOptions) {
    if (!(o.batchSize >= 1)) throw new UserError(`loader: batchSize must be >= 1, got ${o.batchSize}`);
  }

  order(epoch: number): number[] {
    const n = this.dataset.length;
    return this.o.shuffle === false ? Array.from({ length: n }, (_, i) => i) : Rng.derive(this.o.seed, 'data', epoch).permutation(n);
  }

  batchesPerEpoch(): number {
    const n = this.dataset.length;
    return this.o.dropLast ? Math.floor(n / this.o.batchSize) : Math.ceil(n / this.o.batchSize);
  }

  async sample(epoch: number, index: number): Promise<SegSample> {
    const s = await this.dataset.get(index);
    if (!this.o.augment) return s;
    const a = augment(s, Rng.derive(this.o.seed, 'aug', epoch, index), { ignoreIndex: this.dataset.ignoreIndex, ...this.o.augment });
    return { ...s, ...a, label: a.label };
  }

  async batch(epoch: number, indices: number[]): Promise<SegBatch> {
    const samples = await Promise.all(indices.map((i) => this.sample(epoch, i)));
    const { height, width } = samples[0];
    for (const s of samples) {
      if (s.height !== height || s.width !== width) {
        throw new UserError(`loader: cannot batch ${s.file ?? s.id} (${s.width}x${s.height}) with ${samples[0].file ?? samples[0].id} (${width}x${height}); set a crop size`);
      }
    }
    const images = new Uint8Array(samples.length * height * width * 3);
    const labels = new Uint8Array(samples.length * height * width).fill(this.dataset.ignoreIndex);
    samples.forEach((s, b) => {
      images.set(s.image, b * height * width * 3);
      if (s.label) labels.set(s.label, b * height * width);
    });
    return { ids: samples.map((s) => s.id), indices, height, width, images, labels, tags: samples.map((s) => [...s.tags]) };
  }

  /**
   * The batches of one epoch, `prefetch` batches ahead. `startBatch` resumes mid-epoch (a
   * checkpoint stores (epoch, batch)); the batches are the same as in an uninterrupted run.
   */
  async *epoch(epoch: number, startBatch = 0): AsyncGenerator<SegBatch> {
    const order = this.order(epoch);
    const nb = this.batchesPerEpoch();
    const depth = Math.max(1, this.o.prefetch ?? 2);
    const pending: Promise<SegBatch>[] = [];
    let next = startBatch;
    const launch = (): void => {
      if (next >= nb) return;
      const idx = order.slice(next * this.o.batchSize, (next + 1) * this.o.batchSize);
      next++;
      const p = this.batch(epoch, idx);
      p.catch(() => undefined); // surfaced when awaited below; avoid an unhandled rejection meanwhile
      pending.push(p);
    };
    for (let i = 0; i < depth; i++) launch();
    while (pending.length) {
      const b = await (pending.shift() as Promise<SegBatch>);
      launch();
      yield b;
    }
  }
}
