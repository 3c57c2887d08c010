import type { AnyPlugin } from '../../framework/api.js';
import { labelMapTagger } from './label-map.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [labelMapTagger];
