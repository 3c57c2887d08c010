/** `degradation/usm`: BasicSR USMSharp (unsharp masking). */
import { definePlugin, type Degradation } from '../../../framework/api.js';
import { stageProperties, gated } from '../common/stages.js';
import { usmSharp } from './usm.js';

export const usmPlugin = definePlugin({
  kind: 'degradation',
  name: 'usm',
  description: 'unsharp-mask sharpening (BasicSR USMSharp: radius 50, weight 0.5, threshold 10)',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...stageProperties,
      radius: { type: 'integer', minimum: 1, default: 50, description: 'even radius -> radius + 1 (kernel size)' },
      sigma: { type: 'number', minimum: 0, default: 0, description: '0: OpenCV default from the kernel size' },
      weight: { type: 'number', default: 0.5 },
      threshold: { type: 'number', default: 10, description: 'residual threshold in 0..255 units (strict >)' },
    },
  } as const,
  create(o): Degradation {
    const id = o.id ?? 'usm';
    return {
      id,
      apply: (batch, ctx) => gated(batch, ctx, id, o.prob, async (x, rngs) => ({
        out: usmSharp(x, { radius: o.radius, sigma: o.sigma, weight: o.weight, threshold: o.threshold }),
        params: rngs.map(() => ({ radius: o.radius, weight: o.weight, threshold: o.threshold })),
      })),
    };
  },
});
