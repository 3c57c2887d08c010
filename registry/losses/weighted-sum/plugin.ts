import { definePlugin, UserError, type ComponentNode } from '../../../framework/api.js';
import type { ImageLoss } from '../../../framework/api.js';
import { WeightedSumLoss, type WeightedPart } from './weighted-sum.js';

export const weightedSumLoss = definePlugin({
  kind: 'loss',
  name: 'weighted-sum',
  description: 'restoration loss: sum of weight x any restoration losses (e.g. 1 mse + 2 lpips, OSEDiff); terms named by id',
  docs: 'Each entry: `{ id, weight, loss: { type: loss/NAME, ... } }`; `id` defaults to NAME and must be unique (a child config patches an entry by id). A nested weighted-sum reports its terms as `id.term`.',
  schema: {
    type: 'object',
    required: ['terms'],
    properties: {
      terms: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          required: ['loss'],
          properties: {
            id: { type: 'string', minLength: 1, description: 'term name (default: the loss name)' },
            weight: { type: 'number', minimum: 0, default: 1 },
            loss: { type: 'object', required: ['type'], properties: { type: { type: 'string', pattern: '^loss/' } }, additionalProperties: true },
          },
          additionalProperties: false,
        },
      },
    },
    additionalProperties: false,
  } as const,
  async create(o, ctx) {
    const parts: WeightedPart[] = [];
    const where = new Map<string, string>();
    for (let i = 0; i < o.terms.length; i++) {
      const t = o.terms[i];
      const path = `${ctx.path}.terms[${i}]`;
      const node = t.loss as ComponentNode;
      const id = t.id ?? node.type.slice('loss/'.length);
      if (where.has(id)) throw new UserError(`${path}: duplicate term id "${id}" (also ${where.get(id)}); give each entry its own \`id\``);
      where.set(id, path);
      const loss = await ctx.build<ImageLoss>(node, { expectKind: 'loss', path: `${path}.loss` });
      // an attention loss (it declares `layers`) has another compute signature: refuse it here, not mid-training
      if (typeof loss?.compute !== 'function' || 'layers' in loss) {
        throw new UserError(`${path}.loss: "${node.type}" is not a restoration loss (prediction, target -> value); weighted-sum composes loss/l1, loss/mse, loss/ssim, loss/lpips or another weighted-sum`);
      }
      parts.push({ id, weight: t.weight, loss });
    }
    return new WeightedSumLoss(parts);
  },
});
