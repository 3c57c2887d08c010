import * as tf from '@tensorflow/tfjs-core';
import { definePlugin } from '../../../framework/api.js';
import { checkLpipsWeights, Lpips } from '../../metrics/lpips/lpips.js';
import { imageLoss, weightProperty } from '../common/image-loss.js';

/**
 * LPIPS as a loss: the metric's network (registry/metrics/lpips/lpips.ts, lpips v0.1) on tensors, so
 * gradients reach the prediction; its weights are constants. Mean distance over the batch.
 */
export const lpipsLoss = definePlugin({
  kind: 'loss',
  name: 'lpips',
  description: 'restoration loss: LPIPS v0.1 (alex / vgg / squeeze) with user-supplied weights, mean over the batch (term `lpips`)',
  docs: 'Option `weights`: the same safetensors file as metric/lpips (torchvision `features.<i>.*` + `lin<k>.model.1.weight`; make it with scripts/convert_lpips_weights.py). Inputs in [-1, 1] as lpips expects (normalize=False).',
  schema: {
    type: 'object',
    properties: {
      ...weightProperty,
      net: { enum: ['alex', 'vgg', 'squeeze'], default: 'alex' },
      weights: { type: 'string', description: 'safetensors file with the LPIPS network (required)' },
    },
    additionalProperties: false,
  } as const,
  create: (o, ctx) => {
    const path = checkLpipsWeights(o.weights === undefined ? undefined : ctx.resolvePath(o.weights), ctx.path, o.net, 'loss/lpips');
    const net = Lpips.fromFile(o.net, path, 'loss/lpips');
    return imageLoss('lpips', o.weight, (p, t) => tf.mean(net.distanceTensor(p, t)));
  },
});
