import { definePlugin } from '../../../framework/api.js';
import { niqeMetric } from '../common/restoration.js';

export const niqePlugin = definePlugin({
  kind: 'metric',
  name: 'niqe',
  description: 'NIQE as BasicSR calculate_niqe (Y channel, pristine MVG model shipped with the code); no reference image; lower is better',
  docs: 'Needs at least two 96x96 blocks per image after crop_border. The pristine parameters come from BasicSR 1.4.2 (scripts/fixtures/metrics/make_niqe.py).',
  schema: { type: 'object', properties: { crop_border: { type: 'integer', minimum: 0, default: 0 } }, additionalProperties: false } as const,
  create: (o) => niqeMetric(o.crop_border),
});
