import * as tf from '@tensorflow/tfjs-core';
import { ensureTfjsGradients } from '../gradients.js';
import { conv2dBackpropFilterWasm } from './conv-backprop-filter.js';
import { conv2dBackpropInputWasm } from './conv-backprop-input.js';
import { constantGradConfigs } from './constant-gradients.js';
import { conv2dGradConfig, depthwiseConv2dGradConfig, gatherNdGradConfig, mirrorPadGradConfig } from './conv-gradients.js';
import { einsumWasm } from './einsum.js';
import { depthwiseBackpropFilterWasm, depthwiseBackpropInputWasm, maxPoolGradWasm, unsortedSegmentSumWasm } from './js-kernels.js';

/**
 * The training kernels tfjs-backend-wasm 4.22 lacks or runs slowly, as wasm kernels (im2col +
 * wasm BatchMatMul for the conv filter gradient, a forward XNNPACK conv for the input gradient,
 * JS loops for depthwise gradients, segment sums and a corrected max-pool gradient), plus the
 * gradients tfjs lacks on every backend (dilated conv2d / depthwiseConv2d, gatherND, zero
 * gradients of comparisons and logical ops). Replaces the cpu-backed fallbacks of
 * ../wasm-fallback-kernels.ts for those names;
 * Einsum stays on the cpu kernel (forward only, see einsum.ts) but with its operands passed right.
 *
 * Call after the wasm backend module is imported (initBackend/useBackend('wasm') does that).
 * Idempotent: a kernel or gradient already ours is left alone, so it is safe after every
 * backend load (which may re-register stock kernels).
 */
const ours = new Set<tf.KernelFunc | tf.GradFunc>();

function kernel(kernelName: string, make: (previous: tf.KernelFunc | undefined) => tf.KernelFunc): void {
  const prev = tf.getKernel(kernelName, 'wasm');
  if (prev && ours.has(prev.kernelFunc)) return;
  if (prev) tf.unregisterKernel(kernelName, 'wasm');
  const kernelFunc = make(prev?.kernelFunc);
  ours.add(kernelFunc);
  // Keep the replaced kernel's setup (it binds wasm exports the fallback path calls), in case
  // the wasm backend is initialised only after this registration.
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc, ...(prev?.setupFunc ? { setupFunc: prev.setupFunc } : {}) });
}

function gradient(config: tf.GradConfig): void {
  const prev = tf.getGradient(config.kernelName);
  if (prev && ours.has(prev.gradFunc)) return;
  ours.add(config.gradFunc);
  tf.registerGradient(config);
}

/** Names of the wasm kernels this module provides (for reports and tests). */
export const WASM_TRAINING_KERNELS = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'UnsortedSegmentSum', 'Einsum', 'MaxPoolGrad'] as const;
/** Gradients this module (re)defines for every backend. */
export const TRAINING_GRADIENTS = ['Conv2D', 'DepthwiseConv2dNative', 'GatherNd', 'MirrorPad', ...constantGradConfigs.map((c) => c.kernelName)];

export function registerWasmTrainingKernels(): void {
  // Our gradients must land after tfjs's stock ones, or the stock ones would overwrite them.
  ensureTfjsGradients();
  if (tf.findBackend('wasm') !== null || tf.getKernel('BatchMatMul', 'wasm') !== undefined) {
    // A cpu-backed fallback (if registered) stays reachable for the cases we delegate (NCHW).
    kernel('Conv2DBackpropFilter', (prev) => conv2dBackpropFilterWasm(prev));
    // Replaces wasm's own (scalar-loop) kernel, which stays the fallback for NCHW.
    kernel('Conv2DBackpropInput', (prev) => conv2dBackpropInputWasm(prev));
    kernel('DepthwiseConv2dNativeBackpropFilter', () => depthwiseBackpropFilterWasm);
    kernel('DepthwiseConv2dNativeBackpropInput', () => depthwiseBackpropInputWasm);
    kernel('UnsortedSegmentSum', () => unsortedSegmentSumWasm);
    kernel('Einsum', () => einsumWasm);
    // wasm's own MaxPoolGrad is wrong for padded ('same') pooling; see js-kernels.ts.
    kernel('MaxPoolGrad', () => maxPoolGradWasm);
  }
  gradient(conv2dGradConfig);
  gradient(depthwiseConv2dGradConfig);
  gradient(gatherNdGradConfig);
  // tfjs's own MirrorPad gradient drops the border terms (see conv-gradients.ts)
  gradient(mirrorPadGradConfig);
  // Only where tfjs has none (a future tfjs may bring its own).
  for (const c of constantGradConfigs) if (!tf.getGradient(c.kernelName) || ours.has(tf.getGradient(c.kernelName)!.gradFunc)) gradient(c);
}
