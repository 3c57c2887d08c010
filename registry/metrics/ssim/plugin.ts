import { definePlugin } from '../../../framework/api.js';
import { ssimMetric } from '../common/restoration.js';
import { restorationSchema } from '../common/restoration-schema.js';

export const ssimPlugin = definePlugin({
  kind: 'metric',
  name: 'ssim',
  description: 'SSIM as BasicSR calculate_ssim (11x11 Gaussian sigma 1.5, valid region, float64, optional Y channel, crop border)',
  schema: restorationSchema,
  create: (o) => ssimMetric({ cropBorder: o.crop_border, testYChannel: o.test_y_channel }),
});
