import type { AnyPlugin } from '../../framework/api.js';
import { mask2formerHead } from './mask2former/plugin.js';
import { fpnSegHead } from './fpn-seg/plugin.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [mask2formerHead, fpnSegHead];
