import * as tf from '@tensorflow/tfjs-core';
import { definePlugin } from '../../../framework/api.js';
import { imageLoss, weightProperty } from '../common/image-loss.js';

/** Mean absolute error over every pixel and channel (torch.nn.functional.l1_loss, reduction mean). */
export const l1Loss = definePlugin({
  kind: 'loss',
  name: 'l1',
  description: 'restoration loss: mean |pred - target| over pixels and channels (term `l1`)',
  schema: { type: 'object', properties: { ...weightProperty }, additionalProperties: false } as const,
  create: (o) => imageLoss('l1', o.weight, (p, t) => tf.mean(tf.abs(tf.sub(p, t)))),
});
