import { join } from 'node:path';
import { definePlugin } from '../../../framework/api.js';
import { ADE20K_CLASSES } from '../common/class-names.js';
import { FileDataset } from '../common/file-dataset.js';
import { pairFolder, tagsFileOption, tagsOf } from '../common/pair-folder.js';

export const ade20k = definePlugin({
  kind: 'dataset',
  name: 'ade20k',
  description: 'ADE20K SceneParsing (ADEChallengeData2016 layout): 150 classes, reduce-zero-label (0 -> ignore 255)',
  schema: {
    type: 'object',
    properties: {
      root: { type: 'string', description: 'The ADEChallengeData2016 folder (holding images/ and annotations/).' },
      split: { enum: ['training', 'validation'], default: 'validation' },
      ...tagsFileOption,
    },
    required: ['root'],
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const root = ctx.resolvePath(opts.root);
    const entries = pairFolder(join(root, 'images', opts.split), join(root, 'annotations', opts.split));
    return new FileDataset({ type: 'ade20k', classNames: ADE20K_CLASSES, entries, encoding: 'reduce-zero-label', tags: tagsOf(opts, ctx), source: join(root, 'images', opts.split) });
  },
});
