import { definePlugin, UserError } from '../../../framework/api.js';
import { SegmentationMetric } from './segmentation.js';

/** One schema for both conventions: they differ only in how the summary is reduced. */
const segSchema = {
  type: 'object',
  properties: {
    num_classes: { type: 'integer', minimum: 1 },
    ignore_index: { type: 'integer', default: 255 },
    reduce_zero_label: { type: 'boolean', default: false },
    class_names: { type: 'array', items: { type: 'string' } },
  },
  additionalProperties: false,
} as const;

function segOptions(o: { num_classes?: number; ignore_index: number; reduce_zero_label: boolean; class_names?: string[] }, path: string) {
  const numClasses = o.num_classes ?? o.class_names?.length;
  if (numClasses === undefined) throw new UserError(`${path}: set num_classes or class_names (the dataset's class names)`);
  return { numClasses, ignoreIndex: o.ignore_index, reduceZeroLabel: o.reduce_zero_label, classNames: o.class_names };
}

const segDocs = 'Options: num_classes (or class_names, e.g. the dataset\'s classNames), ignore_index (255), reduce_zero_label (mmseg: 0 -> ignore, k -> k-1). Scalars are percentages; per-class values as `iou/<class>`, `acc/<class>` and a `per_class` table.';

export const miouMetric = definePlugin({
  kind: 'metric',
  name: 'miou',
  description: 'mIoU as detectron2 SemSegEvaluator (mean over classes present in the GT; the RASS paper convention), plus fwIoU, mACC, pACC',
  docs: segDocs,
  schema: segSchema,
  create: (o, ctx) => new SegmentationMetric({ ...segOptions(o, ctx.path), convention: 'detectron2' }),
});

export const miouMmsegMetric = definePlugin({
  kind: 'metric',
  name: 'miou-mmseg',
  description: "mIoU as MMSegmentation IoUMetric (nanmean over classes with a non-empty union; float32 rounded summary), plus aAcc, mAcc, mDice, mFscore",
  docs: segDocs,
  schema: segSchema,
  create: (o, ctx) => new SegmentationMetric({ ...segOptions(o, ctx.path), convention: 'mmseg' }),
});
