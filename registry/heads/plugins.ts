import { definePlugin, UserError, type PluginContext } from '../../framework/api.js';
import { FpnSegHead } from './fpn-seg.js';
import { MASK2FORMER_DEFAULTS as D, Mask2FormerHead } from './mask2former.js';

const inputs = {
  numClasses: { type: 'integer', minimum: 1 },
  inChannels: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, description: 'Channels of each input level, finest first (ResNet-50: [256, 512, 1024, 2048]).' },
  inStrides: { type: 'array', items: { type: 'integer', minimum: 1 }, default: [4, 8, 16, 32], description: 'Stride of each input level, finest first.' },
} as const;

function checkInputs(o: { inChannels: number[]; inStrides: number[] }, ctx: PluginContext): void {
  if (o.inChannels.length !== o.inStrides.length) {
    throw new UserError(`${ctx.path}: inChannels has ${o.inChannels.length} levels but inStrides has ${o.inStrides.length}`);
  }
}

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
