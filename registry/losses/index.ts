import type { AnyPlugin } from '../../framework/api.js';
import { mask2formerLoss, perPixelLoss } from './plugins.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [mask2formerLoss, perPixelLoss];
