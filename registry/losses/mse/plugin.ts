import * as tf from '@tensorflow/tfjs-core';
import { definePlugin } from '../../../framework/api.js';
import { imageLoss, weightProperty } from '../common/image-loss.js';

/** Mean squared error over every pixel and channel (torch.nn.functional.mse_loss, reduction mean). */
export const mseLoss = definePlugin({
  kind: 'loss',
  name: 'mse',
  description: 'restoration loss: mean (pred - target)^2 over pixels and channels, on the [-1, 1] range (term `mse`)',
  schema: { type: 'object', properties: { ...weightProperty }, additionalProperties: false } as const,
  create: (o) => imageLoss('mse', o.weight, (p, t) => tf.mean(tf.squaredDifference(p, t))),
});
