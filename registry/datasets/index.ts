import type { AnyPlugin } from '../../framework/api.js';
import { ade20k, cityscapes, imageFolder, pairedFolder, reallq, shapes } from './plugins.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [shapes, ade20k, reallq, cityscapes, imageFolder, pairedFolder];
