/** `degradation/resize`: random up/down/keep resize (Real-ESRGAN stages) or back to the input size. */
import * as tf from '@tensorflow/tfjs-core';
import { definePlugin, type Degradation } from '../../../framework/api.js';
import { stageProperties, rangeSchema, gated } from '../common/stages.js';
import { resize, resizeCv2Area, resizeOutputSize, RESIZE_MODES, type Cv2Mode, type ResizeMode, type ResizeTarget } from './resize.js';

type Mode = ResizeMode | Cv2Mode;

/** torch modes, or OpenCV INTER_AREA (`cv2-area`: output size floor(in*s) in the scale-factor form). */
function resizeBy(x: tf.Tensor4D, target: ResizeTarget, mode: Mode): tf.Tensor4D {
  if (mode !== 'cv2-area') return resize(x, target, mode);
  return resizeCv2Area(x, resizeOutputSize(x.shape[1], x.shape[2], target));
}

export const resizePlugin = definePlugin({
  kind: 'degradation',
  name: 'resize',
  description: 'resize with torch interpolate semantics: random scale (up/down/keep) or to the pipeline input size / scale',
  docs: [
    '`to: random` draws up/down/keep with `resize_prob`, the factor from U(1, range[1]) (up) or U(range[0], 1) (down), and a mode from `modes`.',
    '`relative_to: current` resizes the current image with `scale_factor` (BasicSR stage 1: size floor(h*s), coordinates by 1/s);',
    '`relative_to: origin` resizes to int(origin/scale*s) with an explicit size (BasicSR stage 2).',
    '`to: origin` resizes to (origin_h // scale, origin_w // scale) with a random mode (the final resize).',
  ].join(' '),
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...stageProperties,
      to: { enum: ['random', 'origin'], default: 'random' },
      relative_to: { enum: ['current', 'origin'], default: 'current' },
      resize_prob: { type: 'array', minItems: 3, maxItems: 3, items: { type: 'number', minimum: 0 }, default: [0.2, 0.7, 0.1], description: 'probabilities of up, down, keep' },
      resize_range: { ...rangeSchema('scale range [down minimum, up maximum]', 0), default: [0.15, 1.5] },
      modes: { type: 'array', minItems: 1, items: { enum: [...RESIZE_MODES, 'cv2-area'] }, default: ['area', 'bilinear', 'bicubic'], description: 'torch interpolate modes; cv2-area = OpenCV INTER_AREA' },
    },
  } as const,
  create(o): Degradation {
    const id = o.id ?? 'resize';
    return {
      id,
      apply: (batch, ctx) => gated(batch, ctx, id, o.prob, async (x, rngs) => {
        const [, h, w] = x.shape;
        const origin = ctx.origin ?? { height: h, width: w, scale: 1 };
        const params = rngs.map((r) => {
          if (o.to === 'origin') {
            return { mode: r.choice(o.modes) as Mode, size: [Math.floor(origin.height / origin.scale), Math.floor(origin.width / origin.scale)] as [number, number] };
          }
          const dir = r.choice(['up', 'down', 'keep'] as const, o.resize_prob);
          const scale = dir === 'up' ? r.uniform(1, o.resize_range[1]) : dir === 'down' ? r.uniform(o.resize_range[0], 1) : 1;
          const mode = r.choice(o.modes) as Mode;
          if (o.relative_to === 'origin') {
            const size: [number, number] = [Math.trunc((origin.height / origin.scale) * scale), Math.trunc((origin.width / origin.scale) * scale)];
            return { direction: dir, scale, mode, size };
          }
          return { direction: dir, scale, mode };
        });
        const targets: ResizeTarget[] = params.map((p) => ('size' in p && p.size ? { size: p.size } : { scaleFactor: (p as { scale: number }).scale }));
        if (x.shape[0] === 1) return { out: resizeBy(x, targets[0], params[0].mode), params };
        // per-sample sizes differ in general: resize one by one and require equal results
        const outs = params.map((p, i) => tf.tidy(() => resizeBy(tf.slice(x, [i, 0, 0, 0], [1, -1, -1, -1]), targets[i], p.mode)));
        if (new Set(outs.map((t) => t.shape.join())).size > 1) {
          tf.dispose(outs);
          throw new RangeError(`degradation ${id}: samples of one batch drew different output sizes; degrade samples one at a time (the pipeline does)`);
        }
        const out = tf.concat(outs, 0) as tf.Tensor4D;
        tf.dispose(outs);
        return { out, params };
      }),
    };
  },
});
