import { definePlugin, UserError } from '../../../framework/api.js';
import { checkInputs, inputs } from '../common/inputs.js';
import { FpnSegHead } from './fpn-seg.js';

export const fpnSegHead = definePlugin({
  kind: 'head',
  name: 'fpn-seg',
  description: 'Per-pixel semantic head: FPN over the input levels, summed at the finest stride, 1x1 classifier',
  schema: {
    type: 'object',
    properties: {
      ...inputs,
      hidden: { type: 'integer', minimum: 1, default: 256 },
      groups: { type: 'integer', minimum: 1, default: 32 },
    },
    required: ['numClasses', 'inChannels'],
    additionalProperties: false,
  } as const,
  create(o, ctx) {
    checkInputs(o, ctx);
    if (o.hidden % o.groups !== 0) throw new UserError(`${ctx.path}.groups: ${o.groups} does not divide hidden ${o.hidden}`);
    return new FpnSegHead(o, ctx.seed);
  },
});
