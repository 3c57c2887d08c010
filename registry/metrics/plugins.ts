import { definePlugin } from '../../framework/api.js';
import { SegmentationMetric } from './segmentation.js';
import { distsMetric, lpipsMetric, niqeMetric, psnrMetric, ssimMetric } from './restoration.js';
import { checkDistsWeights, Dists } from './dists.js';
import { checkLpipsWeights, Lpips } from './lpips.js';
import { UserError } from '../../framework/api.js';

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

const restorationSchema = {
  type: 'object',
  properties: {
    crop_border: { type: 'integer', minimum: 0, default: 0 },
    test_y_channel: { type: 'boolean', default: false },
  },
  additionalProperties: false,
} as const;

export const psnrPlugin = definePlugin({
  kind: 'metric',
  name: 'psnr',
  description: 'PSNR as BasicSR calculate_psnr (float64, optional Y channel, crop border); dataset value = mean of per-image PSNR',
  schema: restorationSchema,
  create: (o) => psnrMetric({ cropBorder: o.crop_border, testYChannel: o.test_y_channel }),
});

export const ssimPlugin = definePlugin({
  kind: 'metric',
  name: 'ssim',
  description: 'SSIM as BasicSR calculate_ssim (11x11 Gaussian sigma 1.5, valid region, float64, optional Y channel, crop border)',
  schema: restorationSchema,
  create: (o) => ssimMetric({ cropBorder: o.crop_border, testYChannel: o.test_y_channel }),
});

export const niqePlugin = definePlugin({
  kind: 'metric',
  name: 'niqe',
  description: 'NIQE as BasicSR calculate_niqe (Y channel, pristine MVG model shipped with the code); no reference image; lower is better',
  docs: 'Needs at least two 96x96 blocks per image after crop_border. The pristine parameters come from BasicSR 1.4.2 (scripts/fixtures/metrics/make_niqe.py).',
  schema: { type: 'object', properties: { crop_border: { type: 'integer', minimum: 0, default: 0 } }, additionalProperties: false } as const,
  create: (o) => niqeMetric(o.crop_border),
});

export const lpipsPlugin = definePlugin({
  kind: 'metric',
  name: 'lpips',
  description: 'LPIPS v0.1 (alex / vgg / squeeze) with weights from a user-supplied safetensors file; lower = more similar',
  docs: 'Option `weights`: path to a safetensors file with the torchvision backbone (`features.<i>.*`) and the LPIPS lin layers (`lin<k>.model.1.weight`). Make it from the official PyTorch files with scripts/convert_lpips_weights.py. Images are RGB in [0, 255], mapped to [-1, 1].',
  schema: {
    type: 'object',
    properties: {
      net: { enum: ['alex', 'vgg', 'squeeze'], default: 'alex' },
      weights: { type: 'string' },
    },
    additionalProperties: false,
  } as const,
  create: (o, ctx) => {
    const path = checkLpipsWeights(o.weights === undefined ? undefined : ctx.resolvePath(o.weights), ctx.path, o.net);
    return lpipsMetric(Lpips.fromFile(o.net, path));
  },
});

export const distsPlugin = definePlugin({
  kind: 'metric',
  name: 'dists',
  description: 'DISTS (VGG16 with L2 pooling, learned alpha/beta) with weights from a user-supplied safetensors file; lower = more similar',
  docs: 'Option `weights`: safetensors with torchvision VGG16 `features.<i>.*` and DISTS `alpha`, `beta`; make it with scripts/convert_dists_weights.py. Images are RGB in [0, 255], mapped to [0, 1].',
  schema: { type: 'object', properties: { weights: { type: 'string' } }, additionalProperties: false } as const,
  create: (o, ctx) => distsMetric(Dists.fromFile(checkDistsWeights(o.weights === undefined ? undefined : ctx.resolvePath(o.weights), ctx.path))),
});
