/**
 * Streaming PSNR / SSIM (`metric/psnr`, `metric/ssim`): one value per image pair, averaged over
 * the dataset as BasicSR's validation does (the mean of per-image values). Per-image values are
 * kept so evaluation can write them as a per-image CSV.
 */
import { UserError } from '../../../framework/api.js';
import type { Metric, MetricBatch, MetricImage, MetricResult, PerSampleRecord } from '../../../framework/api.js';
import { checkPair, psnr, ssim, type PsnrSsimOptions } from './psnr-ssim.js';
import { niqe } from '../niqe/niqe.js';
import type { Lpips } from '../lpips/lpips.js';
import type { Dists } from '../dists/dists.js';

export interface PerImageState {
  ids: string[];
  /** PSNR of identical images is Infinity, which JSON cannot hold: it travels as the string "Infinity". */
  values: (number | 'Infinity')[];
}

export class PerImageMetric implements Metric<PerImageState> {
  private ids: string[] = [];
  private values: number[] = [];
  constructor(
    readonly name: string,
    private readonly fn: (a: MetricImage, b: MetricImage | undefined, o: PsnrSsimOptions, sample: string) => number,
    private readonly opts: PsnrSsimOptions,
    /** No-reference metrics (NIQE) read only `restored`. */
    private readonly needsReference = true,
  ) {}

  reset(): void {
    this.ids = [];
    this.values = [];
  }

  update(batch: MetricBatch): void {
    const { restored, reference, ids } = batch;
    if (!restored || (this.needsReference && !reference)) throw new UserError(`metric/${this.name}: the batch has no restored${this.needsReference ? '/reference' : ''} images`);
    if (this.needsReference && restored.length !== reference?.length) {
      throw new UserError(`metric/${this.name}: ${restored.length} restored images but ${reference?.length} references in the batch`);
    }
    for (let i = 0; i < restored.length; i++) {
      const id = ids?.[i] ?? `#${this.values.length}`;
      this.values.push(this.fn(restored[i], reference?.[i], this.opts, id));
      this.ids.push(id);
    }
  }

  state(): PerImageState {
    return { ids: [...this.ids], values: this.values.map((v) => (v === Infinity ? 'Infinity' : v)) };
  }

  merge(other: PerImageState): void {
    if (other.ids.length !== other.values.length) throw new UserError(`metric/${this.name}: malformed state (${other.ids.length} ids, ${other.values.length} values)`);
    this.ids.push(...other.ids);
    this.values.push(...other.values.map((v) => (v === 'Infinity' ? Infinity : v)));
  }

  compute(): MetricResult {
    const n = this.values.length;
    const mean = n === 0 ? NaN : this.values.reduce((a, b) => a + b, 0) / n;
    const perSample: PerSampleRecord[] = this.ids.map((id, i) => ({ id, values: { [this.name]: this.values[i] } }));
    return { scalars: { [this.name]: mean }, perSample };
  }
}

/** The reference of a full-reference metric (update() checked it is there). */
const ref = (b: MetricImage | undefined): MetricImage => b as MetricImage;

export function psnrMetric(opts: PsnrSsimOptions): PerImageMetric {
  return new PerImageMetric(opts.testYChannel ? 'psnr_y' : 'psnr', (a, b, o, s) => psnr(a, ref(b), o, s), opts);
}

export function ssimMetric(opts: PsnrSsimOptions): PerImageMetric {
  return new PerImageMetric(opts.testYChannel ? 'ssim_y' : 'ssim', (a, b, o, s) => ssim(a, ref(b), o, s), opts);
}

/** NIQE of each restored image (BasicSR calculate_niqe, Y channel); no reference needed. */
export function niqeMetric(cropBorder: number): PerImageMetric {
  return new PerImageMetric('niqe', (a, _b, o, s) => niqe(a, o.cropBorder, s), { cropBorder, testYChannel: true }, false);
}

/** LPIPS of each (restored, reference) pair with a loaded model; lower = more similar. */
export function lpipsMetric(model: Lpips): PerImageMetric {
  return new PerImageMetric(`lpips_${model.net}`, (a, b, o, s) => {
    checkPair(a, ref(b), o, s);
    if (a.channels !== 3) throw new UserError(`metric/lpips: sample "${s}": LPIPS needs RGB images, not ${a.channels} channel(s)`);
    return model.imageDistance(a, ref(b));
  }, { cropBorder: 0, testYChannel: false });
}

/** DISTS of each (restored, reference) pair with a loaded model; lower = more similar. */
export function distsMetric(model: Dists): PerImageMetric {
  return new PerImageMetric('dists', (a, b, o, s) => {
    checkPair(a, ref(b), o, s);
    if (a.channels !== 3) throw new UserError(`metric/dists: sample "${s}": DISTS needs RGB images, not ${a.channels} channel(s)`);
    return model.imageDistance(a, ref(b));
  }, { cropBorder: 0, testYChannel: false });
}
