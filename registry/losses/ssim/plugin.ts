import { definePlugin } from '../../../framework/api.js';
import { imageLoss, weightProperty } from '../common/image-loss.js';
import { ssimLossValue } from './ssim-loss.js';

export const ssimLoss = definePlugin({
  kind: 'loss',
  name: 'ssim',
  description: 'restoration loss: 1 - SSIM (BasicSR: 11x11 Gaussian window, sigma 1.5, valid region) on [0, 1] (term `ssim`)',
  docs: 'Differentiable; the same SSIM as metric/psnr-ssim (BasicSR) up to float32 precision, averaged over the batch. Images need at least 11 px per side.',
  schema: { type: 'object', properties: { ...weightProperty }, additionalProperties: false } as const,
  create: (o) => imageLoss('ssim', o.weight, ssimLossValue),
});
