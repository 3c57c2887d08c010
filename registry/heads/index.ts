import type { AnyPlugin } from '../../framework/api.js';
import { fpnSegHead, mask2formerHead } from './plugins.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [mask2formerHead, fpnSegHead];
