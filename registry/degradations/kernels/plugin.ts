/** `degradation/blur` (Real-ESRGAN random blur) and `degradation/sinc` (final sinc filter). */
import { definePlugin, type Degradation } from '../../../framework/api.js';
import { stageProperties, rangeSchema, gated } from '../common/stages.js';
import { KERNEL_TYPES, makeKernel, sampleKernelParams, sincKernel, type KernelParams, type KernelType } from './kernels.js';
import { filter2d } from '../common/filter2d.js';

const ODD_SIZES = { type: 'array', minItems: 1, items: { type: 'integer', minimum: 1 }, description: 'kernel sizes to choose from (odd)' } as const;

export const blurPlugin = definePlugin({
  kind: 'degradation',
  name: 'blur',
  description: 'random blur kernel (iso/aniso Gaussian, generalized, plateau, or sinc) per sample, applied with filter2d',
  docs: 'BasicSR `random_mixed_kernels` / `circular_lowpass_kernel` as Real-ESRGAN draws them: size from `kernel_range`, sinc with `sinc_prob` (cutoff U(pi/3, pi) below size 13, else U(pi/5, pi)), else a type from `kernel_list` with `kernel_prob`; zero-padded to `pad_to`. Reflect padding, cross-correlation.',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...stageProperties,
      kernel_range: { ...ODD_SIZES, default: [7, 9, 11, 13, 15, 17, 19, 21] },
      kernel_list: { type: 'array', items: { enum: [...KERNEL_TYPES] }, default: ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'] },
      kernel_prob: { type: 'array', items: { type: 'number', minimum: 0 }, default: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03] },
      sigma_x: { ...rangeSchema('sigma range along the kernel x axis', 0), default: [0.2, 3] },
      sigma_y: { ...rangeSchema('sigma range along the kernel y axis (anisotropic kernels)', 0), default: [0.2, 3] },
      rotation: { ...rangeSchema('rotation range (radians)'), default: [-Math.PI, Math.PI] },
      beta_gaussian: { ...rangeSchema('generalized Gaussian beta range', 0), default: [0.5, 4] },
      beta_plateau: { ...rangeSchema('plateau beta range', 0), default: [1, 2] },
      sinc_prob: { type: 'number', minimum: 0, maximum: 1, default: 0.1 },
      pad_to: { type: 'integer', minimum: 0, default: 21, description: 'zero-pad kernels to this size (0: no padding)' },
    },
  } as const,
  create(o): Degradation {
    if (o.kernel_list.length !== o.kernel_prob.length) throw new Error('blur: kernel_list and kernel_prob differ in length');
    if (o.kernel_range.some((k) => k % 2 === 0)) throw new Error(`blur: kernel sizes must be odd, got ${o.kernel_range.join(', ')}`);
    const id = o.id ?? 'blur';
    const opts = {
      kernelRange: o.kernel_range, kernelList: o.kernel_list as KernelType[], kernelProb: o.kernel_prob,
      sigmaX: o.sigma_x, sigmaY: o.sigma_y, rotation: o.rotation, betaGaussian: o.beta_gaussian, betaPlateau: o.beta_plateau,
      sincProb: o.sinc_prob, padTo: o.pad_to,
    };
    return {
      id,
      apply: (batch, ctx) => gated(batch, ctx, id, o.prob, async (x, rngs) => {
        const params: KernelParams[] = rngs.map((r) => sampleKernelParams(r, opts));
        return { out: filter2d(x, params.map(makeKernel)), params };
      }),
    };
  },
});

export const sincPlugin = definePlugin({
  kind: 'degradation',
  name: 'sinc',
  description: 'sinc (circular low-pass) filter with random size and cutoff: Real-ESRGAN\'s final sinc',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...stageProperties,
      kernel_range: { ...ODD_SIZES, default: [7, 9, 11, 13, 15, 17, 19, 21] },
      cutoff: { ...rangeSchema('cutoff frequency range (radians)', 0), default: [Math.PI / 3, Math.PI] },
      pad_to: { type: 'integer', minimum: 0, default: 21 },
    },
  } as const,
  create(o): Degradation {
    const id = o.id ?? 'sinc';
    return {
      id,
      apply: (batch, ctx) => gated(batch, ctx, id, o.prob, async (x, rngs) => {
        const params = rngs.map((r) => ({ kind: 'sinc' as const, size: r.choice(o.kernel_range), cutoff: r.uniform(o.cutoff[0], o.cutoff[1]), padTo: o.pad_to }));
        return { out: filter2d(x, params.map((p) => sincKernel(p.cutoff, p.size, p.padTo))), params };
      }),
    };
  },
});
