import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { packageRoot } from '../paths.js';
import { customOp } from './custom-op.js';

/**
 * rass's own TensorFlow CPU kernels (native/ops/*.cc: fused attention, GroupNorm / LayerNorm, GEGLU / SiLU, bilinear grid sampling, AdamW and the gradient norm's sum of squares), built by
 * `npm run setup:native` into native/build/rass_ops.node against the same TensorFlow wheel as
 * the binding. Loading the library registers its ops with TensorFlow; tfjs then runs them by
 * name through the binding like any built-in op, eagerly or inside a compiled step.
 *
 * Only the setup:native binding gets them: tfjs-node's own libtensorflow is another build,
 * and a library compiled against the wheel's headers must not be loaded next to it.
 * `RASS_NATIVE_OPS=0` turns them off (the composite ops run instead, with the same values
 * within float rounding).
 */
export const NATIVE_OPS_LIBRARY = join('native', 'build', 'rass_ops.node');

export interface NativeOpsStatus {
  available: boolean;
  detail: string;
}

let status: NativeOpsStatus = { available: false, detail: 'the native backend is not loaded' };
let suspended = 0;

/** Load the library once the setup:native binding has loaded (`via`: which binding did). */
export function loadNativeOps(via: string, root = packageRoot()): NativeOpsStatus {
  if (status.available) return status;
  if (via !== 'setup-native') return (status = { available: false, detail: `only with the setup:native binding (this process loaded ${via})` });
  const file = join(root, NATIVE_OPS_LIBRARY);
  if (!existsSync(file)) return (status = { available: false, detail: `${NATIVE_OPS_LIBRARY} is not built (\`npm run setup:native\` builds it)` });
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, file);
    registerSoftmaxGradient();
    return (status = { available: true, detail: `${NATIVE_OPS_LIBRARY}: fused attention (RassAttention, RassAttentionGrad), GroupNorm / LayerNorm (RassNorm, RassNormGrad), GEGLU / SiLU (RassGeglu, RassSilu and their gradients), grid sampling (RassGridSample, RassGridSampleGrad), the softmax gradient (RassSoftmaxGrad), AdamW and the gradient norm (RassAdamW, RassSumSquares)` });
  } catch (e) {
    return (status = { available: false, detail: `${NATIVE_OPS_LIBRARY} does not load: ${(e as Error).message.split('\n')[0]}` });
  }
}

export function nativeOpsStatus(): NativeOpsStatus {
  return status;
}

/**
 * Whether a caller should use the fused kernels now: loaded, the native backend active, not
 * turned off by RASS_NATIVE_OPS=0 and not inside `withoutNativeOps` (a step compiled for XLA,
 * which has no kernels for them).
 */
export function nativeOpsEnabled(): boolean {
  return status.available && suspended === 0 && process.env.RASS_NATIVE_OPS !== '0' && tf.getBackend() === 'tensorflow';
}

/** Run `fn` with the composite ops instead of the fused kernels. */
export function withoutNativeOps<T>(fn: () => T): T {
  suspended++;
  try {
    return fn();
  } finally {
    suspended--;
  }
}

/** An op attribute as the binding takes it. */
export type OpAttr = { name: string; kind: 'int' | 'float'; value: number };

interface BindingBackend {
  binding: { TF_ATTR_INT: number; TF_ATTR_FLOAT: number };
  /** tfjs-node makes each output a tensor of the shared engine already. */
  executeMultipleOutputs(name: string, attrs: { name: string; type: number; value: number }[], inputs: tf.Tensor[], numOutputs: number): tf.Tensor[];
}

/** Execute one fused op on the native backend; its outputs as tfjs tensors (the caller's to dispose). */
export function runNativeOp(name: string, attrs: OpAttr[], inputs: tf.Tensor[], numOutputs: number): tf.Tensor[] {
  const be = tf.backend() as unknown as BindingBackend;
  const typed = attrs.map((a) => ({ name: a.name, type: a.kind === 'int' ? be.binding.TF_ATTR_INT : be.binding.TF_ATTR_FLOAT, value: a.value }));
  return be.executeMultipleOutputs(name, typed, inputs, numOutputs);
}

/**
 * A fused op whose backward needs only its inputs: `op` computes one output from them, and
 * `${op}Grad` takes (dy, ...inputs) and returns one gradient per input. The returned function
 * saves the inputs and runs the pair as one custom op (GEGLU, SiLU, grid sampling).
 */
export function nativeOpWithGrad(op: string): (...inputs: tf.Tensor[]) => tf.Tensor {
  return customOp((inputs, save) => {
    save(inputs);
    const [y] = runNativeOp(op, [], inputs, 1) as [tf.Tensor];
    return { value: y, gradFunc: (dy, saved) => runNativeOp(`${op}Grad`, [], [dy, ...(saved as tf.Tensor[])], inputs.length) };
  });
}

/**
 * tf.softmax's gradient as one kernel on native (RassSoftmaxGrad: dy y - sum(dy y) y per row of
 * the last axis, the sum in double) where tfjs composes a Mul, a Sum, a Mul and a Sub: three
 * passes over a scores-sized tensor in every composite attention. Registered once the kernels
 * load, for every backend: elsewhere, with the kernels off (RASS_NATIVE_OPS=0, a step compiled
 * for XLA) or over another axis it runs tfjs's own composite.
 */
let softmaxGradient = false;
function registerSoftmaxGradient(): void {
  if (softmaxGradient) return;
  softmaxGradient = true;
  const warn = console.warn;
  console.warn = () => {}; // "Overriding the gradient for 'Softmax'": deliberate
  try {
    tf.registerGradient({
      kernelName: 'Softmax',
      outputsToSave: [true],
      gradFunc: (dy, saved, attrs) => {
        const [y] = saved as [tf.Tensor];
        const dim = (attrs as unknown as { dim: number }).dim;
        const last = dim === -1 || dim === y.rank - 1;
        return {
          logits: () => {
            if (last && nativeOpsEnabled() && y.size > 0) return runNativeOp('RassSoftmaxGrad', [], [dy as tf.Tensor, y], 1)[0]!;
            const dyTimesY = tf.mul(dy as tf.Tensor, y);
            return tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, [dim], true), y));
          },
        };
      },
    });
  } finally {
    console.warn = warn;
  }
}
