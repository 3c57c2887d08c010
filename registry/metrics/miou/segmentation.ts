/**
 * Streaming semantic-segmentation metrics (`metric/miou`, `metric/miou-mmseg`): one confusion
 * matrix summed over all images (dataset-level, as both detectron2 and mmseg do), summarised
 * in either library's convention. Scalars are percentages (x100), as both libraries report.
 */
import { UserError } from '../../../framework/api.js';
import type { LabelMap, Metric, MetricBatch, MetricResult, MetricTable } from '../../../framework/api.js';
import { ConfusionMatrix, detectron2Summary, mmsegSummary, reduceZeroLabel } from './confusion.js';

export type MiouConvention = 'detectron2' | 'mmseg';

export interface SegmentationMetricOptions {
  numClasses: number;
  ignoreIndex: number;
  reduceZeroLabel: boolean;
  classNames?: readonly string[];
  convention: MiouConvention;
}

export interface SegmentationState {
  numClasses: number;
  /** Row-major `conf[gt][pred]`. */
  counts: number[];
}

export class SegmentationMetric implements Metric<SegmentationState> {
  readonly name: string;
  private readonly cm: ConfusionMatrix;
  private readonly classNames: readonly string[];

  constructor(private readonly opts: SegmentationMetricOptions) {
    this.name = opts.convention === 'detectron2' ? 'miou' : 'miou-mmseg';
    if (opts.classNames && opts.classNames.length !== opts.numClasses) {
      throw new UserError(`metric/${this.name}: class_names has ${opts.classNames.length} names but num_classes is ${opts.numClasses}`);
    }
    this.classNames = opts.classNames ?? Array.from({ length: opts.numClasses }, (_, i) => String(i));
    this.cm = new ConfusionMatrix(opts.numClasses);
  }

  reset(): void {
    this.cm.reset();
  }

  update(batch: MetricBatch): void {
    const { segPred, segGt, ids } = batch;
    if (!segPred || !segGt) throw new UserError(`metric/${this.name}: the batch has no segPred/segGt label maps`);
    if (segPred.length !== segGt.length) {
      throw new UserError(`metric/${this.name}: ${segPred.length} predictions but ${segGt.length} label maps in the batch`);
    }
    for (let i = 0; i < segGt.length; i++) {
      const gt: LabelMap = this.opts.reduceZeroLabel ? reduceZeroLabel(segGt[i]) : segGt[i];
      this.cm.add(segPred[i], gt, this.opts.ignoreIndex, ids?.[i] ?? `#${i} of the batch`);
    }
  }

  state(): SegmentationState {
    return { numClasses: this.opts.numClasses, counts: Array.from(this.cm.counts) };
  }

  merge(other: SegmentationState): void {
    if (other.numClasses !== this.opts.numClasses) {
      throw new UserError(`metric/${this.name}: cannot merge a state for ${other.numClasses} classes into one for ${this.opts.numClasses}`);
    }
    this.cm.addCounts(other.counts);
  }

  /** The raw counts (conf[gt][pred]); for callers that want the matrix itself. */
  confusion(): Float64Array {
    return this.cm.counts.slice();
  }

  compute(): MetricResult {
    const names = this.classNames;
    const scalars: Record<string, number> = {};
    const pct = (x: number) => 100 * x;
    let table: MetricTable;
    if (this.opts.convention === 'detectron2') {
      const s = detectron2Summary(this.cm);
      Object.assign(scalars, { miou: pct(s.miou), fwiou: pct(s.fwiou), macc: pct(s.macc), pacc: pct(s.pacc) });
      names.forEach((n, c) => {
        scalars[`iou/${n}`] = pct(s.iou[c]);
        scalars[`acc/${n}`] = pct(s.acc[c]);
      });
      table = { name: 'per_class', columns: ['class', 'iou', 'acc'], rows: names.map((n, c) => [n, pct(s.iou[c]), pct(s.acc[c])]) };
    } else {
      const s = mmsegSummary(this.cm);
      Object.assign(scalars, {
        miou: s.reported.miou, aacc: s.reported.aacc, macc: s.reported.macc, mdice: s.reported.mdice,
        mfscore: s.reported.mfscore, mprecision: s.reported.mprecision, mrecall: s.reported.mrecall,
      });
      names.forEach((n, c) => {
        scalars[`iou/${n}`] = pct(s.iou[c]);
        scalars[`acc/${n}`] = pct(s.acc[c]);
      });
      table = {
        name: 'per_class',
        columns: ['class', 'iou', 'acc', 'dice', 'precision', 'recall', 'fscore'],
        rows: names.map((n, c) => [n, pct(s.iou[c]), pct(s.acc[c]), pct(s.dice[c]), pct(s.precision[c]), pct(s.recall[c]), pct(s.fscore[c])]),
      };
    }
    return { scalars, tables: [table] };
  }
}
