import { existsSync } from 'node:fs';
import { definePlugin, readSafetensors, UserError } from '../../../framework/api.js';
import { RESNET_PRESETS, ResNet, weightsFromSafetensors } from './resnet.js';

export const resnetBackbone = definePlugin({
  kind: 'backbone',
  name: 'resnet',
  description: 'ResNet-50/101 (torchvision key names, frozen BatchNorm) exposing strides 4/8/16/32 for Mask2Former / fpn-seg baselines',
  docs: 'Weights: a torchvision state_dict saved as safetensors (e.g. `safetensors.torch.save_file(resnet50(weights=...).state_dict(), "r50.safetensors")`); without `weights` the model is randomly initialised (kaiming, as torchvision). `tiny` is a toy width for tests.',
  schema: {
    type: 'object',
    properties: {
      preset: { enum: Object.keys(RESNET_PRESETS), default: 'resnet50' },
      weights: { type: 'string', description: 'Path to a safetensors file with torchvision ResNet keys (fc.* ignored).' },
      prefix: { type: 'string', default: '', description: 'Key prefix to strip (e.g. "backbone.").' },
      trainable: { type: 'boolean', default: false, description: 'Fine-tune the conv kernels (FT / R2S baselines); BatchNorm stays frozen, as in Mask2Former.' },
    },
    additionalProperties: false,
  } as const,
  create(o, ctx) {
    const cfg = RESNET_PRESETS[o.preset];
    let weights = null;
    if (o.weights) {
      const p = ctx.resolvePath(o.weights);
      if (!existsSync(p)) throw new UserError(`${ctx.path}.weights: ${p} does not exist`);
      try {
        weights = weightsFromSafetensors(readSafetensors(p), o.prefix);
      } catch (e) {
        if (e instanceof UserError) throw new UserError(`${ctx.path}.weights: ${e.message}`, { cause: e });
        throw e;
      }
    }
    try {
      return new ResNet(cfg, weights, ctx.seed, o.trainable);
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`${ctx.path}.weights (${o.weights}): ${e.message}`, { cause: e });
      throw e;
    }
  },
});
