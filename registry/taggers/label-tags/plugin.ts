import { definePlugin } from '../../../framework/api.js';
import { synonymProperties, synonymsFromOptions } from '../common/synonyms.js';
import { LabelTagsTagger } from './label-tags.js';

export const labelTagsTagger = definePlugin({
  kind: 'tagger',
  name: 'label-tags',
  description: 'prompt = the classes present in the ground truth (training, oracle evaluation); other tags inherit class masks through synonyms',
  docs: '`min_fraction`: a class becomes a tag only when it covers at least that fraction of the labelled pixels (ignore pixels excluded). Tags are in class order.',
  schema: {
    type: 'object',
    properties: {
      ...synonymProperties,
      min_fraction: { type: 'number', minimum: 0, maximum: 1, default: 0 },
    },
    additionalProperties: false,
  } as const,
  create: (o, ctx) => new LabelTagsTagger({ synonyms: synonymsFromOptions(o, ctx), minFraction: o.min_fraction }),
});
