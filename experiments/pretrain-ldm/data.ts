import { Rng, UserError, tf, type SegDataset, type Tagger } from '../../framework/api.js';

/** The training images (HWC RGB uint8, all one size) and each one's tags, decoded once. */
export interface ImageSet {
  readonly height: number;
  readonly width: number;
  readonly images: Uint8Array[];
  readonly tags: string[][];
}

/** Decode samples `[from, to)` of `ds` with their tags from `tagger`; every image must have the first one's size. */
export async function loadImageSet(ds: SegDataset, tagger: Tagger, from: number, to: number, where: string): Promise<ImageSet> {
  const images: Uint8Array[] = [];
  const tags: string[][] = [];
  let height = 0;
  let width = 0;
  for (let i = from; i < to; i++) {
    const s = await ds.get(i);
    if (i === from) ({ height, width } = s);
    if (s.height !== height || s.width !== width) {
      throw new UserError(`${where}: sample ${s.id} is ${s.height}x${s.width} but the first is ${height}x${width}; the prior trains on one image size`);
    }
    images.push(s.image);
    tags.push(tagger.tagsFor(s, ds.classNames, ds.ignoreIndex));
  }
  return { height, width, images, tags };
}

/**
 * NHWC float images in [-1, 1] for the listed indices; with `crop`, the size x size window at
 * each image's (y, x) offset instead of the whole image.
 */
export function imageBatch(set: ImageSet, idx: readonly number[], crop?: { size: number; offsets: readonly [number, number][] }): tf.Tensor4D {
  const { height: h, width: w } = set;
  const ch = crop ? crop.size : h;
  const cw = crop ? crop.size : w;
  const out = new Float32Array(idx.length * ch * cw * 3);
  idx.forEach((k, b) => {
    const img = set.images[k] as Uint8Array;
    const [oy, ox] = crop ? (crop.offsets[b] as [number, number]) : [0, 0];
    let o = b * ch * cw * 3;
    for (let y = oy; y < oy + ch; y++) {
      for (let i = (y * w + ox) * 3, end = (y * w + ox + cw) * 3; i < end; i++) out[o++] = (img[i] as number) / 127.5 - 1;
    }
  });
  return tf.tensor4d(out, [idx.length, ch, cw, 3]);
}

/** [-1, 1] NHWC -> one HWC uint8 image per batch element. */
export function toUint8Images(x: tf.Tensor4D): Uint8Array[] {
  const [b, h, w, c] = x.shape;
  const v = x.dataSync();
  return Array.from({ length: b }, (_, k) => {
    const img = new Uint8Array(h * w * c);
    for (let i = 0; i < img.length; i++) img[i] = Math.max(0, Math.min(255, Math.round(((v[k * img.length + i] as number) + 1) * 127.5)));
    return img;
  });
}

/**
 * Seeded data order: epoch e visits a permutation drawn from (seed, key, e); step s takes the
 * next `batch` positions of that sequence. A function of the step alone, so a resumed run
 * sees exactly the batches the uninterrupted run would have.
 */
export class DataOrder {
  private readonly perms = new Map<number, number[]>();
  constructor(private readonly seed: number, private readonly key: string, private readonly n: number, private readonly batch: number) {}

  indices(step: number): number[] {
    const out: number[] = [];
    for (let j = 0; j < this.batch; j++) {
      const pos = step * this.batch + j;
      const epoch = Math.floor(pos / this.n);
      let p = this.perms.get(epoch);
      if (!p) {
        p = Rng.derive(this.seed, 'pretrain-ldm', this.key, 'order', epoch).permutation(this.n);
        this.perms.clear(); // only the current epoch (and the next) are ever needed
        this.perms.set(epoch, p);
      }
      out.push(p[pos % this.n] as number);
    }
    return out;
  }
}

/** PSNR (dB) between two batches of images in [-1, 1], computed on the [0, 1] scale per image and averaged. */
export function psnr(a: tf.Tensor4D, b: tf.Tensor4D): number {
  return tf.tidy(() => {
    const mse = tf.mean(tf.square(tf.div(tf.sub(a, b), 2)), [1, 2, 3]);
    const v = tf.mul(-10, tf.div(tf.log(tf.maximum(mse, 1e-10)), Math.LN10));
    return tf.mean(v).dataSync()[0] as number;
  });
}
