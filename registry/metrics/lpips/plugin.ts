import { definePlugin } from '../../../framework/api.js';
import { lpipsMetric } from '../common/restoration.js';
import { checkLpipsWeights, Lpips } from './lpips.js';

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
