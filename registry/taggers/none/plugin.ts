import { definePlugin } from '../../../framework/api.js';
import { SynonymTagger, synonymProperties, synonymsFromOptions } from '../common/synonyms.js';

/** No tags: the empty prompt (the "no semantics" ablation; SCL then has nothing to constrain). */
export class NoTagger extends SynonymTagger {
  readonly type = 'none';
  tagsFor(): string[] {
    return [];
  }
}

export const noneTagger = definePlugin({
  kind: 'tagger',
  name: 'none',
  description: 'the empty prompt for every sample',
  schema: { type: 'object', properties: { ...synonymProperties }, additionalProperties: false } as const,
  create: (o, ctx) => new NoTagger(synonymsFromOptions(o, ctx)),
});
