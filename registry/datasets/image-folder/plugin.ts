import { definePlugin } from '../../../framework/api.js';
import { ADE20K_CLASSES } from '../common/class-names.js';
import { FileDataset, type LabelEncoding } from '../common/file-dataset.js';
import { pairFolder, tagsFileOption, tagsOf } from '../common/pair-folder.js';

export const imageFolder = definePlugin({
  kind: 'dataset',
  name: 'image-folder',
  description: 'Any folder of images, optionally with a folder of label maps (same stems, .png, class indices, 255 = ignore)',
  schema: {
    type: 'object',
    properties: {
      images: { type: 'string', description: 'Image folder.' },
      labels: { type: 'string', description: 'Label-map folder; omit for unlabeled images.' },
      classNames: { type: 'array', items: { type: 'string' }, description: 'Class names in label order; default: the 150 ADE20K classes.' },
      labelEncoding: { enum: ['identity', 'reduce-zero-label'], default: 'identity' },
      labelsOptional: { type: 'boolean', default: false, description: 'Allow images without a label file (their samples carry no label).' },
      recursive: { type: 'boolean', default: false },
      ...tagsFileOption,
    },
    required: ['images'],
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const imageDir = ctx.resolvePath(opts.images);
    const labelDir = opts.labels ? ctx.resolvePath(opts.labels) : undefined;
    const entries = pairFolder(imageDir, labelDir, { recursive: opts.recursive, labelsOptional: opts.labelsOptional });
    return new FileDataset({
      type: 'image-folder',
      classNames: opts.classNames ?? ADE20K_CLASSES,
      entries,
      encoding: opts.labelEncoding as LabelEncoding,
      tags: tagsOf(opts, ctx),
      source: imageDir,
    });
  },
});
