/**
 * `tagger/label-map`: the first name of `tagger/label-tags`, kept so existing configs still run.
 * Same tagger; its options keep their original camelCase spelling (`useDefaultSynonyms`,
 * `minFraction`). The synonym logic lives in ../common/synonyms.ts for every tagger.
 */
import { definePlugin } from '../../../framework/api.js';
import { LabelTagsTagger, type LabelTagsOptions } from '../label-tags/label-tags.js';
import { synonymMap } from '../common/synonyms.js';

export { DEFAULT_SYNONYMS } from '../common/synonyms.js';
export type LabelMapTaggerOptions = LabelTagsOptions;

export class LabelMapTagger extends LabelTagsTagger {
  override readonly type: string = 'label-map';
}

export const labelMapTagger = definePlugin({
  kind: 'tagger',
  name: 'label-map',
  description: 'alias of tagger/label-tags with camelCase options (useDefaultSynonyms, minFraction)',
  schema: {
    type: 'object',
    properties: {
      synonyms: {
        type: 'object',
        additionalProperties: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
        default: {},
        description: 'tag -> class name(s) (or other tags) whose mask it inherits; merged over the built-in map.',
      },
      useDefaultSynonyms: { type: 'boolean', default: true },
      minFraction: { type: 'number', minimum: 0, maximum: 1, default: 0 },
    },
    additionalProperties: false,
  } as const,
  create: (opts, ctx) => new LabelMapTagger({ synonyms: synonymMap(opts.synonyms as Record<string, string | string[]>, opts.useDefaultSynonyms, ctx.path), minFraction: opts.minFraction }),
});
