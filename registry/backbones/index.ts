import type { AnyPlugin } from '../../framework/api.js';
import { autoencoderKl, clipText, unet2dCondition } from './sd/plugins.js';
import { resnetBackbone } from './resnet/plugin.js';
import { oneStepPlugin } from './sd/one-step-plugin.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [unet2dCondition, autoencoderKl, clipText, oneStepPlugin, resnetBackbone];
