import type { AnyPlugin } from '../../framework/api.js';
import { loraPlugin } from './lora/plugin.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [loraPlugin];
