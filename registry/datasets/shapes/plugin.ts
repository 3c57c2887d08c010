import { definePlugin } from '../../../framework/api.js';
import { ShapesDataset, SHAPES_CLASSES } from './shapes.js';

export const shapes = definePlugin({
  kind: 'dataset',
  name: 'shapes',
  description: 'Procedural textured-shapes segmentation set (the embedded default): deterministic by seed, any size, no files',
  docs: `Each image has a textured background and 2..maxObjects objects of random shape (ellipse, polygon, ring, bar). The class of an
object is its *texture* (fine stripes, checker, dots, ...), not its shape or colour, so the fine detail that degradations destroy is exactly
what a segmenter has to see. Classes: ${SHAPES_CLASSES.join(', ')}.`,
  schema: {
    type: 'object',
    properties: {
      length: { type: 'integer', minimum: 1, default: 1000 },
      height: { type: 'integer', minimum: 16, default: 128 },
      width: { type: 'integer', minimum: 16, default: 128 },
      numClasses: { type: 'integer', minimum: 2, maximum: SHAPES_CLASSES.length, default: SHAPES_CLASSES.length, description: 'Classes used (the first N names; class 0 is the background).' },
      maxObjects: { type: 'integer', minimum: 1, default: 5 },
      seed: { type: 'integer', description: "Dataset seed (default: the run's seed). Sample i depends only on (seed, i)." },
    },
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    return new ShapesDataset({ ...opts, seed: opts.seed ?? ctx.seed });
  },
});
