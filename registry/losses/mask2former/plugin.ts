import { definePlugin } from '../../../framework/api.js';
import { MASK2FORMER_LOSS_DEFAULTS as D, MaskClassificationLoss } from './mask-criterion.js';

export const mask2formerLoss = definePlugin({
  kind: 'loss',
  name: 'mask2former',
  description: 'Mask2Former set criterion: Hungarian matching, CE with no-object weight, point-sampled BCE + dice, deep supervision',
  docs: 'Defaults follow RASS / Mask2Former (ADE20K semantic): class 2, mask 5, dice 5, no-object 0.1, 12544 points, oversample 3, importance 0.75. The matcher uses the same weights as its costs.',
  schema: {
    type: 'object',
    properties: {
      numClasses: { type: 'integer', minimum: 1 },
      classWeight: { type: 'number', minimum: 0, default: D.classWeight },
      maskWeight: { type: 'number', minimum: 0, default: D.maskWeight },
      diceWeight: { type: 'number', minimum: 0, default: D.diceWeight },
      noObjectWeight: { type: 'number', minimum: 0, default: D.noObjectWeight },
      numPoints: { type: 'integer', minimum: 1, default: D.numPoints },
      oversampleRatio: { type: 'number', minimum: 1, default: D.oversampleRatio },
      importanceSampleRatio: { type: 'number', minimum: 0, maximum: 1, default: D.importanceSampleRatio },
      deepSupervision: { type: 'boolean', default: D.deepSupervision },
    },
    required: ['numClasses'],
    additionalProperties: false,
  } as const,
  create: (o) => new MaskClassificationLoss({ ...D, ...o }),
});
