import { Worker } from 'node:worker_threads';
import { Rng, UserError } from '../../../framework/api.js';
import type { SegDataset, SegSample } from '../../../framework/api.js';
import { augment, type AugmentOptions } from './augment.js';
import { hasRecipe } from './recipe.js';

/** Augment one sample with its own stream Rng.derive(seed, 'aug', epoch, index). */
export function augmentSample(s: SegSample, seed: number, epoch: number, index: number, o: AugmentOptions, ignoreIndex: number): SegSample {
  const a = augment(s, Rng.derive(seed, 'aug', epoch, index), { ignoreIndex, ...o });
  return { ...s, ...a, label: a.label };
}

/** A pool of loader worker threads, each holding its own copy of the dataset. */
class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve(s: SegSample): void; reject(e: Error): void; worker: number }>();
  /** Requests in flight per worker: a busy worker keeps the process alive, an idle one does not. */
  private readonly busy: number[] = [];
  private nextId = 0;
  private rr = 0;

  constructor(n: number, data: unknown) {
    // the compiled .js sits beside this module; under tsx the .ts source is resolved instead
    const here = new URL(import.meta.url);
    const ext = here.pathname.endsWith('.ts') ? '.ts' : '.js';
    for (let i = 0; i < n; i++) {
      const entry = new URL(`./loader-worker${ext}`, import.meta.url);
      // TypeScript sources (tests under tsx): register tsx's loader inside the worker first
      const w =
        ext === '.ts'
          ? new Worker(`(async () => { const { register } = await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}); register(); await import(${JSON.stringify(entry.href)}); })();`, { eval: true, workerData: data })
          : new Worker(entry, { workerData: data });
      w.on('message', (m: { id: number; sample?: SegSample; error?: string; user?: boolean }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (--this.busy[p.worker] === 0) this.workers[p.worker].unref();
        if (m.error !== undefined) p.reject(m.user ? new UserError(m.error) : new Error(m.error));
        else p.resolve(m.sample as SegSample);
      });
      w.on('error', (e) => {
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
      });
      w.unref();
      this.workers.push(w);
      this.busy.push(0);
    }
  }

  request(epoch: number, index: number): Promise<SegSample> {
    const id = this.nextId++;
    const k = this.rr++ % this.workers.length;
    const w = this.workers[k];
    if (this.busy[k]++ === 0) w.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker: k });
      w.postMessage({ id, epoch, index });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}

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
  /**
   * Worker threads that decode and augment samples off the main thread (0: in-process). Needs a
   * dataset that can describe itself to a worker (every built-in dataset can).
   */
  workers?: number;
}

/**
 * Batching, seeded per-epoch order and per-sample augmentation. Order comes from
 * Rng.derive(seed, 'data', epoch); a sample's augmentation from Rng.derive(seed, 'aug', epoch,
 * index), so results do not depend on prefetch depth or on which thread did the work.
 */
export class SegLoader {
  private pool: WorkerPool | null = null;

  constructor(readonly dataset: SegDataset, readonly o: LoaderOptions) {
    if (!(o.batchSize >= 1)) throw new UserError(`loader: batchSize must be >= 1, got ${o.batchSize}`);
    if ((o.workers ?? 0) > 0) {
      if (!hasRecipe(dataset)) throw new UserError(`loader: dataset ${dataset.type} cannot run in worker threads; set workers: 0`);
      this.pool = new WorkerPool(o.workers as number, { recipe: dataset.recipe(), seed: o.seed, augment: o.augment });
    }
  }

  /** Stop the worker threads (if any). */
  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
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
    if (this.pool) return this.pool.request(epoch, index);
    const s = await this.dataset.get(index);
    return this.o.augment ? augmentSample(s, this.o.seed, epoch, index, this.o.augment, this.dataset.ignoreIndex) : s;
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
