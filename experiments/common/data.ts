import { tf, Rng, UserError, type Degradation, type SegDataset, type SegSample } from '../../framework/api.js';

/**
 * Training and validation batches for the image experiments (SCR, RASS, baselines): a
 * dataset, an optional crop, and an optional degradation that makes the LQ input on the fly.
 * Everything random is a pure function of (seed, epoch, sample index): the same sample gets
 * the same crop and the same LQ image on resume, in any worker, whatever else is in its batch.
 */
export interface ImageBatch {
  readonly samples: readonly SegSample[];
  /** Dataset indices of the samples. */
  readonly indices: readonly number[];
  /** NHWC in [-1, 1]. */
  readonly hq: tf.Tensor4D;
  /** NHWC in [-1, 1]: degraded HQ, the dataset's stored LQ, or the HQ itself when neither. */
  readonly lq: tf.Tensor4D;
  readonly height: number;
  readonly width: number;
}

export interface BatchSourceOptions {
  dataset: SegDataset;
  degradation: Degradation | null;
  seed: number;
  /** A label for the random streams (`train`, `val`): two sources with different labels never share draws. */
  split: string;
  /** Crop [height, width]: random per (epoch, index) when `random`, centred otherwise. */
  crop?: readonly [number, number] | null;
  randomCrop: boolean;
  /** Where this source is configured, for error messages. */
  where: string;
}

export class BatchSource {
  constructor(readonly o: BatchSourceOptions) {
    if (o.dataset.length === 0) throw new UserError(`${o.where}: the dataset is empty`);
  }

  get length(): number {
    return this.o.dataset.length;
  }

  /** Dataset indices of the training batch at `step` (epoch-wise permutations, seeded). */
  trainIndices(step: number, batchSize: number): { epoch: number; index: number }[] {
    const n = this.length;
    const out: { epoch: number; index: number }[] = [];
    for (let j = 0; j < batchSize; j++) {
      const g = step * batchSize + j;
      const epoch = Math.floor(g / n);
      out.push({ epoch, index: this.permutation(epoch)[g % n] as number });
    }
    return out;
  }

  private perm: { epoch: number; order: number[] } | null = null;
  private permutation(epoch: number): number[] {
    if (this.perm?.epoch !== epoch) this.perm = { epoch, order: Rng.derive(this.o.seed, 'order', this.o.split, epoch).permutation(this.length) };
    return this.perm.order;
  }

  /** Load, crop and (when configured) degrade these samples. */
  async batch(items: readonly { epoch: number; index: number }[]): Promise<ImageBatch> {
    const samples: SegSample[] = [];
    for (const it of items) samples.push(this.crop(await this.o.dataset.get(it.index), it));
    const { height, width } = samples[0] as SegSample;
    for (const s of samples) {
      if (s.height !== height || s.width !== width) {
        throw new UserError(`${this.o.where}: samples ${samples[0]?.id} (${width}x${height}) and ${s.id} (${s.width}x${s.height}) differ in size; set a crop so a batch can be stacked`);
      }
    }
    const hq01 = toTensor(samples.map((s) => s.image), height, width);
    let lq01: tf.Tensor4D;
    if (this.o.degradation) {
      const rng = items.map((it) => Rng.derive(this.o.seed, 'degradation', this.o.split, it.epoch, it.index));
      const out = await this.o.degradation.apply(hq01, { rng });
      lq01 = out === hq01 ? tf.clone(hq01) : out;
      if (lq01.shape[1] !== height || lq01.shape[2] !== width) {
        tf.dispose([hq01, lq01]);
        throw new UserError(`${this.o.where}.degradation: the pipeline returns ${lq01.shape[2]}x${lq01.shape[1]} images for ${width}x${height} inputs; end it with a resize back to the input size (scale 1)`);
      }
    } else if (samples.every((s) => s.lq)) {
      for (const s of samples) {
        if (s.lq?.height !== height || s.lq.width !== width) throw new UserError(`${this.o.where}: the stored LQ image of ${s.id} is not ${width}x${height}`);
      }
      lq01 = toTensor(samples.map((s) => (s.lq as { image: Uint8Array }).image), height, width);
    } else {
      lq01 = tf.clone(hq01);
    }
    const [hq, lq] = tf.tidy(() => [tf.sub(tf.mul(hq01, 2), 1), tf.sub(tf.mul(lq01, 2), 1)] as tf.Tensor4D[]);
    tf.dispose([hq01, lq01]);
    return { samples, indices: items.map((it) => it.index), hq: hq as tf.Tensor4D, lq: lq as tf.Tensor4D, height, width };
  }

  private crop(s: SegSample, it: { epoch: number; index: number }): SegSample {
    const c = this.o.crop;
    if (!c) return s;
    const [ch, cw] = c;
    if (s.height < ch || s.width < cw) throw new UserError(`${this.o.where}.crop: ${s.file ?? s.id} is ${s.width}x${s.height}, smaller than the ${cw}x${ch} crop`);
    let y0 = Math.floor((s.height - ch) / 2);
    let x0 = Math.floor((s.width - cw) / 2);
    if (this.o.randomCrop) {
      const r = Rng.derive(this.o.seed, 'crop', this.o.split, it.epoch, it.index);
      y0 = r.int(0, s.height - ch);
      x0 = r.int(0, s.width - cw);
    }
    if (y0 === 0 && x0 === 0 && ch === s.height && cw === s.width) return s;
    const cut = (src: Uint8Array, channels: number): Uint8Array => {
      const out = new Uint8Array(ch * cw * channels);
      for (let y = 0; y < ch; y++) out.set(src.subarray(((y + y0) * s.width + x0) * channels, ((y + y0) * s.width + x0 + cw) * channels), y * cw * channels);
      return out;
    };
    // a stored LQ image of the same size is cropped alongside (paired datasets at scale 1)
    const lq = s.lq && s.lq.height === s.height && s.lq.width === s.width ? { ...s.lq, image: cut(s.lq.image, 3), height: ch, width: cw } : undefined;
    return { ...s, image: cut(s.image, 3), label: s.label ? cut(s.label, 1) : undefined, height: ch, width: cw, lq };
  }
}

/** HWC uint8 images -> NHWC float in [0, 1]. */
export function toTensor(images: readonly Uint8Array[], height: number, width: number): tf.Tensor4D {
  const data = new Float32Array(images.length * height * width * 3);
  images.forEach((im, i) => {
    for (let k = 0; k < im.length; k++) data[i * im.length + k] = (im[k] as number) / 255;
  });
  return tf.tensor4d(data, [images.length, height, width, 3]);
}

/** NHWC in [-1, 1] -> one HWC uint8 array per image (rounded, clamped). */
export function toUint8Images(x: tf.Tensor4D): Uint8Array[] {
  const [n, h, w, c] = x.shape;
  const t = tf.tidy(() => tf.clipByValue(tf.round(tf.mul(tf.add(x, 1), 127.5)), 0, 255));
  const v = t.dataSync() as Float32Array;
  t.dispose();
  const out: Uint8Array[] = [];
  const size = h * w * c;
  for (let i = 0; i < n; i++) out.push(Uint8Array.from(v.subarray(i * size, (i + 1) * size)));
  return out;
}
