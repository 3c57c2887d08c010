import { UserError, type PluginContext } from '../../../framework/api.js';

/** Options every head takes: the classes and the backbone levels it reads. */
export const inputs = {
  numClasses: { type: 'integer', minimum: 1 },
  inChannels: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, description: 'Channels of each input level, finest first (ResNet-50: [256, 512, 1024, 2048]).' },
  inStrides: { type: 'array', items: { type: 'integer', minimum: 1 }, default: [4, 8, 16, 32], description: 'Stride of each input level, finest first.' },
} as const;

/** inChannels and inStrides describe the same levels, so their lengths must agree. */
export function checkInputs(o: { inChannels: number[]; inStrides: number[] }, ctx: PluginContext): void {
  if (o.inChannels.length !== o.inStrides.length) {
    throw new UserError(`${ctx.path}: inChannels has ${o.inChannels.length} levels but inStrides has ${o.inStrides.length}`);
  }
}
