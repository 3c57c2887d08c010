import type { AnyPlugin } from '../../framework/api.js';
import { miouMetric, miouMmsegMetric } from './miou/plugin.js';
import { psnrPlugin } from './psnr/plugin.js';
import { ssimPlugin } from './ssim/plugin.js';
import { niqePlugin } from './niqe/plugin.js';
import { lpipsPlugin } from './lpips/plugin.js';
import { distsPlugin } from './dists/plugin.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [miouMetric, miouMmsegMetric, psnrPlugin, ssimPlugin, niqePlugin, lpipsPlugin, distsPlugin];
