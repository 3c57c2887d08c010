/** Options shared by the full-reference restoration metrics (psnr, ssim), as BasicSR's calculate_psnr/ssim take them. */
export const restorationSchema = {
  type: 'object',
  properties: {
    crop_border: { type: 'integer', minimum: 0, default: 0 },
    test_y_channel: { type: 'boolean', default: false },
  },
  additionalProperties: false,
} as const;
