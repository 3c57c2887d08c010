import type { AnyPlugin } from '../../framework/api.js';
import { distsPlugin, lpipsPlugin, miouMetric, miouMmsegMetric, niqePlugin, psnrPlugin, ssimPlugin } from './plugins.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [miouMetric, miouMmsegMetric, psnrPlugin, ssimPlugin, niqePlugin, lpipsPlugin, distsPlugin];
