import { definePlugin, UserError } from '../../../framework/api.js';
import { checkInputs, inputs } from '../common/inputs.js';
import { MASK2FORMER_DEFAULTS as D, Mask2FormerHead } from './mask2former.js';

export const mask2formerHead = definePlugin({
  kind: 'head',
  name: 'mask2former',
  description: 'Mask2Former: deformable-attention (or FPN) pixel decoder + masked-attention transformer decoder, learnable queries, deep supervision',
  docs: 'Defaults follow docs/method.md: hidden 256, 100 queries, 10 decoder layers, 6 pixel-decoder layers. Semantic inference: softmax(class) x sigmoid(mask).',
  schema: {
    type: 'object',
    properties: {
      ...inputs,
      hidden: { type: 'integer', minimum: 1, default: D.hidden },
      queries: { type: 'integer', minimum: 1, default: D.queries },
      decoderLayers: { type: 'integer', minimum: 0, default: D.decoderLayers },
      heads: { type: 'integer', minimum: 1, default: D.heads },
      ffn: { type: 'integer', minimum: 1, default: D.ffn },
      pixelDecoder: { enum: ['msdeform', 'fpn'], default: D.pixelDecoder },
      pixelDecoderLayers: { type: 'integer', minimum: 0, default: D.pixelDecoderLayers },
      pixelDecoderHeads: { type: 'integer', minimum: 1, default: D.pixelDecoderHeads },
      pixelDecoderPoints: { type: 'integer', minimum: 1, default: D.pixelDecoderPoints },
      pixelDecoderFfn: { type: 'integer', minimum: 1, default: D.pixelDecoderFfn },
      maskDim: { type: 'integer', minimum: 1, default: D.maskDim },
      groups: { type: 'integer', minimum: 1, default: D.groups, description: 'GroupNorm groups (must divide hidden).' },
    },
    required: ['numClasses', 'inChannels'],
    additionalProperties: false,
  } as const,
  create(o, ctx) {
    checkInputs(o, ctx);
    if (o.hidden % o.heads !== 0 || o.hidden % o.pixelDecoderHeads !== 0) throw new UserError(`${ctx.path}.hidden: ${o.hidden} must be divisible by heads (${o.heads}) and pixelDecoderHeads (${o.pixelDecoderHeads})`);
    if (o.hidden % o.groups !== 0) throw new UserError(`${ctx.path}.groups: ${o.groups} does not divide hidden ${o.hidden}`);
    return new Mask2FormerHead({ ...D, ...o, pixelDecoder: o.pixelDecoder as 'msdeform' | 'fpn' }, ctx.seed);
  },
});
