import type { AnyPlugin } from '../../framework/api.js';
import { labelMapTagger } from './label-map/plugin.js';
import { labelTagsTagger } from './label-tags/plugin.js';
import { tagsFileTagger } from './tags-file/plugin.js';
import { fixedTagger } from './fixed/plugin.js';
import { noneTagger } from './none/plugin.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [labelTagsTagger, labelMapTagger, tagsFileTagger, fixedTagger, noneTagger];
