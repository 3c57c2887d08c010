import { definePlugin } from '../../../framework/api.js';
import { SCL_MAX_TAGS, SemanticConstraintLoss, type SclReduction } from './scl.js';

export const sclLoss = definePlugin({
  kind: 'loss',
  name: 'scl',
  description: 'Semantic-Constraint Loss on cross-attention maps: token term (1 - mass inside the tag mask)^2 + pixel term BCE(max-normalised map, soft mask)',
  docs: 'For each tag with a class mask and each selected layer: A = mean of the tag tokens\' maps, mask area-averaged to the map grid (soft), token = (1 - sum(A M)/sum(A))^2, pixel = mean BCE(1e-3 + (1 - 2e-3) A/max(A), M). `reduction`: mean over (sample, tag, layer) triples, sample-mean (per sample, then over samples), or sum. Unmatched tags are excluded and counted. Targets become fixed-shape tensors (`max_tags` slots per sample) before the step, so the loss records into a compiled training step. See registry/losses/scl/scl.ts.',
  schema: {
    type: 'object',
    properties: {
      layers: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, default: ['.*attn2'], description: 'full-match regexes of captured attention layer names (cross-attention: `.*attn2`)' },
      token_weight: { type: 'number', minimum: 0, default: 1 },
      pixel_weight: { type: 'number', minimum: 0, default: 1 },
      reduction: { enum: ['mean', 'sample-mean', 'sum'], default: 'mean' },
      max_tags: {
        type: 'integer',
        minimum: 1,
        default: SCL_MAX_TAGS,
        description: 'tag slots per sample in the tensors a compiled training step takes (fixed, so the compiled program never changes; empty slots cost a little padding, add nothing). A sample with more tags that have a mask is a UserError naming this key',
      },
    },
    additionalProperties: false,
  } as const,
  create: (o, ctx) => new SemanticConstraintLoss(
    { layers: o.layers, tokenWeight: o.token_weight, pixelWeight: o.pixel_weight, reduction: o.reduction as SclReduction, maxTags: o.max_tags },
    ctx.path,
  ),
});
