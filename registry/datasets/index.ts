import type { AnyPlugin } from '../../framework/api.js';
import { shapes } from './shapes/plugin.js';
import { ade20k } from './ade20k/plugin.js';
import { reallq } from './reallq/plugin.js';
import { cityscapes } from './cityscapes/plugin.js';
import { imageFolder } from './image-folder/plugin.js';
import { pairedFolder } from './paired-folder/plugin.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [shapes, ade20k, reallq, cityscapes, imageFolder, pairedFolder];
