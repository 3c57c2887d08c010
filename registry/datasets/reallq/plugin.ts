import { join } from 'node:path';
import { definePlugin } from '../../../framework/api.js';
import { ADE20K_CLASSES } from '../common/class-names.js';
import { FileDataset, type LabelEncoding } from '../common/file-dataset.js';
import { pairFolder, tagsFileOption, tagsOf } from '../common/pair-folder.js';

export const reallq = definePlugin({
  kind: 'dataset',
  name: 'reallq',
  description: "RealLQ real-world low-quality images in ADE20K's label space (150 classes, reduce-zero-label by default); folder layout configurable",
  schema: {
    type: 'object',
    properties: {
      root: { type: 'string' },
      images: { type: 'string', default: 'images', description: 'Image folder, relative to root.' },
      labels: { type: 'string', default: 'annotations', description: 'Label-map folder, relative to root (same stems as the images, .png).' },
      labelEncoding: { enum: ['reduce-zero-label', 'identity'], default: 'reduce-zero-label', description: 'reduce-zero-label: stored ADE20K values 1..150 (0 = other); identity: stored 0..149, 255 = ignore.' },
      recursive: { type: 'boolean', default: true },
      ...tagsFileOption,
    },
    required: ['root'],
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const root = ctx.resolvePath(opts.root);
    const entries = pairFolder(join(root, opts.images), join(root, opts.labels), { recursive: opts.recursive });
    return new FileDataset({ type: 'reallq', classNames: ADE20K_CLASSES, entries, encoding: opts.labelEncoding as LabelEncoding, tags: tagsOf(opts, ctx), source: join(root, opts.images) });
  },
});
