/** `degradation/noise`: Gaussian or Poisson noise (colour or grey) per sample, BasicSR semantics. */
import * as tf from '@tensorflow/tfjs-core';
import { definePlugin, type Degradation } from '../../../framework/api.js';
import { stageProperties, rangeSchema, gated, sampleData } from '../common/stages.js';
import { addPoissonNoise, rngSampler } from './noise.js';
import { gaussianNoisyImage } from './gaussian-split.js';

export const noisePlugin = definePlugin({
  kind: 'degradation',
  name: 'noise',
  description: 'additive Gaussian (sigma/255) or Poisson noise, colour or grey, per sample',
  docs: 'Gaussian with `gaussian_prob`, sigma ~ U(sigma_range) (0..255 units); else Poisson with scale ~ U(poisson_scale_range). Grey noise with `gray_prob` (one draw copied to all channels). `clip`/`rounds` as BasicSR: clip(round(x*255),0,255)/255 when both.',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...stageProperties,
      gaussian_prob: { type: 'number', minimum: 0, maximum: 1, default: 0.5 },
      sigma_range: { ...rangeSchema('Gaussian sigma range (0..255 units)', 0), default: [1, 30] },
      poisson_scale_range: { ...rangeSchema('Poisson scale range', 0), default: [0.05, 3] },
      gray_prob: { type: 'number', minimum: 0, maximum: 1, default: 0.4 },
      clip: { type: 'boolean', default: true },
      rounds: { type: 'boolean', default: false },
    },
  } as const,
  create(o): Degradation {
    const id = o.id ?? 'noise';
    return {
      id,
      apply: (batch, ctx) => gated(batch, ctx, id, o.prob, async (x, rngs) => {
        const [n, h, w, c] = x.shape;
        const samples = sampleData(x);
        const out = new Float32Array(n * h * w * c);
        const params = rngs.map((r, i) => {
          const gaussian = r.random() < o.gaussian_prob;
          const gray = r.random() < o.gray_prob;
          // draws come from a child stream so the parameter draws above never shift them
          const draws = r.fork('draws');
          if (gaussian) {
            const sigma = r.uniform(o.sigma_range[0], o.sigma_range[1]);
            // the noise image is never built: draws are added as they are made, on two threads
            out.set(gaussianNoisyImage(samples[i], h * w, c, sigma, gray, o.clip, o.rounds, draws), i * h * w * c);
            return { kind: 'gaussian', sigma, gray };
          }
          const scale = r.uniform(o.poisson_scale_range[0], o.poisson_scale_range[1]);
          out.set(addPoissonNoise(samples[i], h * w, c, scale, gray, o.clip, o.rounds, rngSampler(draws).poisson), i * h * w * c);
          return { kind: 'poisson', scale, gray };
        });
        return { out: tf.tensor4d(out, [n, h, w, c]), params };
      }),
    };
  },
});
