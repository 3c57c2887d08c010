/** `degradation/clamp` and `degradation/round` (8-bit quantization, half to even like torch.round). */
import * as tf from '@tensorflow/tfjs-core';
import { definePlugin, type Degradation } from '../../../framework/api.js';
import { stageProperties, gated } from '../common/stages.js';

export const clampPlugin = definePlugin({
  kind: 'degradation',
  name: 'clamp',
  description: 'clamp values to [min, max]',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { ...stageProperties, min: { type: 'number', default: 0 }, max: { type: 'number', default: 1 } },
  } as const,
  create(o): Degradation {
    const id = o.id ?? 'clamp';
    return { id, apply: (b, ctx) => gated(b, ctx, id, o.prob, async (x, r) => ({ out: tf.clipByValue(x, o.min, o.max), params: r.map(() => ({})) })) };
  },
});

/** clamp(round(x * levels), 0, levels) / levels with round half to even (tf.round is banker's rounding). */
export function quantize(x: tf.Tensor4D, bits: number): tf.Tensor4D {
  const levels = 2 ** bits - 1;
  return tf.tidy(() => tf.div(tf.clipByValue(tf.round(tf.mul(x, levels)), 0, levels), levels));
}

export const roundPlugin = definePlugin({
  kind: 'degradation',
  name: 'round',
  description: 'quantize to `bits` bits: clamp(round(x*255), 0, 255)/255 for 8 bits (Real-ESRGAN\'s last step)',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { ...stageProperties, bits: { type: 'integer', minimum: 1, maximum: 16, default: 8 } },
  } as const,
  create(o): Degradation {
    const id = o.id ?? 'round';
    return { id, apply: (b, ctx) => gated(b, ctx, id, o.prob, async (x, r) => ({ out: quantize(x, o.bits), params: r.map(() => ({})) })) };
  },
});
