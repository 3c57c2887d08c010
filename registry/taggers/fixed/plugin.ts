import { definePlugin } from '../../../framework/api.js';
import type { SegSample } from '../../../framework/api.js';
import { SynonymTagger, synonymProperties, synonymsFromOptions } from '../common/synonyms.js';

/** The same tags for every sample (one prompt for the whole dataset). */
export class FixedTagger extends SynonymTagger {
  readonly type = 'fixed';
  constructor(readonly tags: readonly string[], synonyms: Readonly<Record<string, readonly string[]>>) {
    super(synonyms);
  }

  tagsFor(_sample: SegSample): string[] {
    return [...this.tags];
  }
}

export const fixedTagger = definePlugin({
  kind: 'tagger',
  name: 'fixed',
  description: 'one prompt for every sample: the given tags (masks through synonyms as for any tagger)',
  schema: {
    type: 'object',
    required: ['tags'],
    properties: {
      ...synonymProperties,
      tags: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, description: 'the prompt\'s tags, in order (joined by ", ")' },
    },
    additionalProperties: false,
  } as const,
  create: (o, ctx) => new FixedTagger(o.tags.map((t) => t.trim()), synonymsFromOptions(o, ctx)),
});
