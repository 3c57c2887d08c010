import type { AnyPlugin } from '../../framework/api.js';
import { blurPlugin, sincPlugin } from './kernels/plugin.js';
import { resizePlugin } from './resize/plugin.js';
import { noisePlugin } from './noise/plugin.js';
import { diffJpegPlugin, sharpJpegPlugin } from './jpeg/plugin.js';
import { usmPlugin } from './sharpen/plugin.js';
import { clampPlugin, roundPlugin } from './basic/plugin.js';
import { pipelinePlugin, randomOrderPlugin } from './pipeline/plugin.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [
  blurPlugin, sincPlugin, resizePlugin, noisePlugin, diffJpegPlugin, sharpJpegPlugin, usmPlugin, clampPlugin, roundPlugin,
  pipelinePlugin, randomOrderPlugin,
];
