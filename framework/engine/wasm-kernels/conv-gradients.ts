import * as tf from '@tensorflow/tfjs-core';
import { num2 } from './io.js';

/**
 * Gradients tfjs 4.22 lacks on every backend: conv2d and depthwiseConv2d with dilation > 1
 * (the stock gradients assert dilation 1) and gatherND (no gradient registered at all).
 *
 * A dilated conv (tfjs allows dilation > 1 only with stride 1) equals a conv with the
 * zero-dilated filter of size (k-1)*d+1, padding included ('same' is computed from that
 * effective size). So dx is the backprop-input of the dilated filter, and dW is the
 * backprop-filter for the effective size sampled every d-th tap. Both run through the
 * ordinary kernels, so every backend (and its fast kernels) serves them.
 */
type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

function run(kernel: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown>): tf.Tensor {
  return tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/** [kh,kw,ci,co] -> [(kh-1)*dh+1, (kw-1)*dw+1, ci, co] with zeros between taps. */
export function dilateFilter(filter: tf.Tensor4D, dh: number, dw: number): tf.Tensor4D {
  const [kh, kw, ci, co] = filter.shape;
  return tf.tidy(() => {
    const spread = tf.pad(tf.reshape(filter, [kh, 1, kw, 1, ci, co]), [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]]);
    return tf.slice(tf.reshape(spread, [kh * dh, kw * dw, ci, co]), [0, 0, 0, 0], [(kh - 1) * dh + 1, (kw - 1) * dw + 1, ci, co]) as tf.Tensor4D;
  });
}

function undilate(grad: tf.Tensor4D, dh: number, dw: number): tf.Tensor4D {
  const [eh, ew, ci, co] = grad.shape;
  return tf.stridedSlice(grad, [0, 0, 0, 0], [eh, ew, ci, co], [dh, dw, 1, 1]) as tf.Tensor4D;
}

export const conv2dGradConfig: tf.GradConfig = {
  kernelName: 'Conv2D',
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const { dilations, strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as {
      dilations: number | [number, number]; strides: number | [number, number]; pad: Pad; dataFormat: 'NHWC' | 'NCHW'; dimRoundingMode?: string;
    };
    const [dh, dw] = num2(dilations, 1);
    const common = { strides, pad, dataFormat, dimRoundingMode };
    if (dh === 1 && dw === 1) {
      return {
        x: () => run('Conv2DBackpropInput', { dy: dy as tf.Tensor, filter }, { ...common, inputShape: x.shape }),
        filter: () => run('Conv2DBackpropFilter', { x, dy: dy as tf.Tensor }, { ...common, filterShape: filter.shape }),
      };
    }
    const [sh, sw] = num2(strides, 1);
    if (sh !== 1 || sw !== 1) throw new Error(`conv2d gradient: dilation ${dh}x${dw} needs stride 1 (got ${sh}x${sw})`);
    const [kh, kw, ci, co] = filter.shape;
    const effShape: [number, number, number, number] = [(kh - 1) * dh + 1, (kw - 1) * dw + 1, ci, co];
    return {
      x: () => tf.tidy(() => run('Conv2DBackpropInput', { dy: dy as tf.Tensor, filter: dilateFilter(filter, dh, dw) }, { ...common, inputShape: x.shape })),
      filter: () => tf.tidy(() => undilate(run('Conv2DBackpropFilter', { x, dy: dy as tf.Tensor }, { ...common, filterShape: effShape }) as tf.Tensor4D, dh, dw)),
    };
  },
};

export const depthwiseConv2dGradConfig: tf.GradConfig = {
  kernelName: 'DepthwiseConv2dNative',
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const { dilations, strides, pad, dimRoundingMode } = attrs as unknown as {
      dilations: number | [number, number]; strides: number | [number, number]; pad: Pad; dimRoundingMode?: string;
    };
    const [dh, dw] = num2(dilations, 1);
    const [sh, sw] = num2(strides, 1);
    if ((dh !== 1 || dw !== 1) && (sh !== 1 || sw !== 1)) throw new Error(`depthwiseConv2d gradient: dilation ${dh}x${dw} needs stride 1 (got ${sh}x${sw})`);
    if (dh === 1 && dw === 1) {
      const common = { strides, pad, dilations: 1, dimRoundingMode };
      return {
        x: () => run('DepthwiseConv2dNativeBackpropInput', { dy: dy as tf.Tensor, filter }, { ...common, inputShape: x.shape }),
        filter: () => run('DepthwiseConv2dNativeBackpropFilter', { x, dy: dy as tf.Tensor }, { ...common, filterShape: filter.shape }),
      };
    }
    // tfjs-backend-cpu's DepthwiseConv2dNativeBackpropInput ignores dilations (wrong dx), so
    // dilated depthwise gradients use the zero-dilated filter too, on every backend.
    const [kh, kw, ci, m] = filter.shape;
    const effShape: [number, number, number, number] = [(kh - 1) * dh + 1, (kw - 1) * dw + 1, ci, m];
    const common = { strides: 1, pad, dilations: 1, dimRoundingMode };
    return {
      x: () => tf.tidy(() => run('DepthwiseConv2dNativeBackpropInput', { dy: dy as tf.Tensor, filter: dilateFilter(filter, dh, dw) }, { ...common, inputShape: x.shape })),
      filter: () => tf.tidy(() => undilate(run('DepthwiseConv2dNativeBackpropFilter', { x, dy: dy as tf.Tensor }, { ...common, filterShape: effShape }) as tf.Tensor4D, dh, dw)),
    };
  },
};

/** gatherND's gradient: scatter dy back to the gathered positions (duplicates add up). */
export const gatherNdGradConfig: tf.GradConfig = {
  kernelName: 'GatherNd',
  inputsToSave: ['params', 'indices'],
  gradFunc: (dy, saved) => {
    const [params, indices] = saved as [tf.Tensor, tf.Tensor];
    return {
      params: () => tf.scatterND(indices, dy as tf.Tensor, params.shape),
      indices: () => tf.zerosLike(indices),
    };
  },
};

/**
 * mirrorPad's gradient. tfjs 4.22's stock one only slices the centre of dy, dropping what the
 * mirrored border pixels received, so reflect-padded filters (degradation blur, USM) got a wrong
 * gradient at every border. Here each axis folds its padded strips back onto the pixels they
 * copy: 'reflect' pads copy x[1..a] (left, reversed) and x[n-1-b..n-2] (right), 'symmetric'
 * ones x[0..a-1] and x[n-b..n-1]. Axes are independent (a multi-axis pad is the composition of
 * per-axis pads), so folding them one after another is the adjoint.
 */
export const mirrorPadGradConfig: tf.GradConfig = {
  kernelName: 'MirrorPad',
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved as [tf.Tensor];
    const { paddings, mode } = attrs as unknown as { paddings: [number, number][]; mode: 'reflect' | 'symmetric' };
    const off = mode === 'reflect' ? 1 : 0;
    return {
      x: () => {
        let g = dy as tf.Tensor;
        for (let ax = 0; ax < x.rank; ax++) {
          const [a, b] = paddings[ax];
          if (a === 0 && b === 0) continue;
          const n = x.shape[ax];
          const cut = (start: number, size: number) => tf.slice(g, g.shape.map((_, i) => (i === ax ? start : 0)), g.shape.map((s, i) => (i === ax ? size : s)));
          const pad = (t: tf.Tensor, before: number) => tf.pad(t, t.shape.map((_, i) => (i === ax ? [before, n - before - t.shape[i]] : [0, 0])) as [number, number][]);
          let next = cut(a, n);
          if (a > 0) next = tf.add(next, pad(tf.reverse(cut(0, a), ax), off));
          if (b > 0) next = tf.add(next, pad(tf.reverse(cut(a + n, b), ax), n - off - b));
          g = next;
        }
        return g;
      },
    };
  },
};
