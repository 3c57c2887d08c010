import { definePlugin } from '../../../framework/api.js';
import { distsMetric } from '../common/restoration.js';
import { checkDistsWeights, Dists } from './dists.js';

export const distsPlugin = definePlugin({
  kind: 'metric',
  name: 'dists',
  description: 'DISTS (VGG16 with L2 pooling, learned alpha/beta) with weights from a user-supplied safetensors file; lower = more similar',
  docs: 'Option `weights`: safetensors with torchvision VGG16 `features.<i>.*` and DISTS `alpha`, `beta`; make it with scripts/convert_dists_weights.py. Images are RGB in [0, 255], mapped to [0, 1].',
  schema: { type: 'object', properties: { weights: { type: 'string' } }, additionalProperties: false } as const,
  create: (o, ctx) => distsMetric(Dists.fromFile(checkDistsWeights(o.weights === undefined ? undefined : ctx.resolvePath(o.weights), ctx.path))),
});
