/** `degradation/diffjpeg` (BasicSR DiffJPEG) and `degradation/jpeg-sharp` (real libjpeg via sharp). */
import * as tf from '@tensorflow/tfjs-core';
import { definePlugin, type Degradation } from '../../../framework/api.js';
import { stageProperties, rangeSchema, gated, sampleData } from '../common/stages.js';
import { diffJpeg } from './diffjpeg.js';
import { diffJpegTensor } from './diffjpeg-tensor.js';
import { sharpJpeg } from './sharp-jpeg.js';

export const diffJpegPlugin = definePlugin({
  kind: 'degradation',
  name: 'diffjpeg',
  description: 'differentiable JPEG (BasicSR DiffJPEG semantics), quality ~ U(quality_range) per sample; input clamped to [0,1] first',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...stageProperties,
      quality_range: { ...rangeSchema('JPEG quality range (float, as Real-ESRGAN draws it)', 1), default: [30, 95] },
      differentiable: { type: 'boolean', default: false, description: 'round(x) + (x - round(x))^3 instead of round' },
      implementation: { enum: ['loops', 'tensor'], default: 'loops', description: 'loops: fast, forward only; tensor: tfjs ops (gradients flow through)' },
    },
  } as const,
  create(o): Degradation {
    const id = o.id ?? 'diffjpeg';
    return {
      id,
      apply: (batch, ctx) => gated(batch, ctx, id, o.prob, async (x, rngs) => {
        const quality = rngs.map((r) => r.uniform(o.quality_range[0], o.quality_range[1]));
        const clamped = tf.clipByValue(x, 0, 1);
        const out = (o.implementation === 'tensor' ? diffJpegTensor : diffJpeg)(clamped, quality, o.differentiable);
        clamped.dispose();
        return { out, params: quality.map((q) => ({ quality: q })) };
      }),
    };
  },
});

export const sharpJpegPlugin = definePlugin({
  kind: 'degradation',
  name: 'jpeg-sharp',
  description: 'real JPEG (libjpeg through sharp, 8-bit, chroma 4:2:0), integer quality ~ U{quality_range} per sample',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...stageProperties,
      quality_range: { ...rangeSchema('JPEG quality range (integers, inclusive)', 1), default: [30, 95] },
      chroma_subsampling: { enum: ['4:2:0', '4:4:4'], default: '4:2:0' },
    },
  } as const,
  create(o): Degradation {
    const id = o.id ?? 'jpeg-sharp';
    return {
      id,
      apply: (batch, ctx) => gated(batch, ctx, id, o.prob, async (x, rngs, idx) => {
        const [n, h, w, c] = x.shape;
        if (c !== 3) throw new RangeError(`degradation ${id}: JPEG needs 3 channels, got ${c}`);
        const samples = sampleData(x);
        const out = new Float32Array(n * h * w * c);
        const params = [];
        for (let i = 0; i < idx.length; i++) {
          const quality = rngs[i].int(Math.ceil(o.quality_range[0]), Math.floor(o.quality_range[1]));
          out.set(await sharpJpeg(samples[i], h, w, quality, o.chroma_subsampling), i * h * w * c);
          params.push({ quality });
        }
        return { out: tf.tensor4d(out, [n, h, w, c]), params };
      }),
    };
  },
});
