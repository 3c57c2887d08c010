import type { AnyPlugin } from '../../framework/api.js';
import { mask2formerLoss } from './mask2former/plugin.js';
import { perPixelLoss } from './per-pixel/plugin.js';
import { l1Loss } from './l1/plugin.js';
import { mseLoss } from './mse/plugin.js';
import { ssimLoss } from './ssim/plugin.js';
import { lpipsLoss } from './lpips/plugin.js';
import { weightedSumLoss } from './weighted-sum/plugin.js';
import { sclLoss } from './scl/plugin.js';

/** Every built-in plugin of this folder, listed explicitly (nothing registers itself on import). */
export const plugins: readonly AnyPlugin[] = [mask2formerLoss, perPixelLoss, l1Loss, mseLoss, ssimLoss, lpipsLoss, weightedSumLoss, sclLoss];
