import { definePlugin } from '../../../framework/api.js';
import { PerPixelLoss } from './per-pixel.js';

export const perPixelLoss = definePlugin({
  kind: 'loss',
  name: 'per-pixel',
  description: 'Per-pixel cross-entropy (ignore 255) plus optional softmax dice, for fpn-seg',
  schema: {
    type: 'object',
    properties: {
      numClasses: { type: 'integer', minimum: 1 },
      ceWeight: { type: 'number', minimum: 0, default: 1 },
      diceWeight: { type: 'number', minimum: 0, default: 0 },
      smooth: { type: 'number', minimum: 0, default: 1 },
    },
    required: ['numClasses'],
    additionalProperties: false,
  } as const,
  create: (o) => new PerPixelLoss(o),
});
