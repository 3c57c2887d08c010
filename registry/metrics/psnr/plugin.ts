import { definePlugin } from '../../../framework/api.js';
import { psnrMetric } from '../common/restoration.js';
import { restorationSchema } from '../common/restoration-schema.js';

export const psnrPlugin = definePlugin({
  kind: 'metric',
  name: 'psnr',
  description: 'PSNR as BasicSR calculate_psnr (float64, optional Y channel, crop border); dataset value = mean of per-image PSNR',
  schema: restorationSchema,
  create: (o) => psnrMetric({ cropBorder: o.crop_border, testYChannel: o.test_y_channel }),
});
