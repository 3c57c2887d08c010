import { join } from 'node:path';
import { definePlugin } from '../../../framework/api.js';
import { CITYSCAPES_CLASSES } from '../common/class-names.js';
import { FileDataset } from '../common/file-dataset.js';
import { pairFolder, tagsFileOption, tagsOf } from '../common/pair-folder.js';

export const cityscapes = definePlugin({
  kind: 'dataset',
  name: 'cityscapes',
  description: 'Cityscapes fine annotations (leftImg8bit + gtFine *_labelTrainIds.png): 19 classes, 255 = ignore',
  schema: {
    type: 'object',
    properties: {
      root: { type: 'string', description: 'Folder holding leftImg8bit/ and gtFine/.' },
      split: { enum: ['train', 'val', 'test'], default: 'val' },
      ...tagsFileOption,
    },
    required: ['root'],
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const root = ctx.resolvePath(opts.root);
    const imageDir = join(root, 'leftImg8bit', opts.split);
    const entries = pairFolder(imageDir, join(root, 'gtFine', opts.split), {
      recursive: true,
      imageSuffix: '_leftImg8bit.png',
      labelSuffix: '_gtFine_labelTrainIds.png',
    });
    return new FileDataset({ type: 'cityscapes', classNames: CITYSCAPES_CLASSES, entries, encoding: 'identity', tags: tagsOf(opts, ctx), source: imageDir });
  },
});
