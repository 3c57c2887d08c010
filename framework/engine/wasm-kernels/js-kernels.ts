import * as tf from '@tensorflow/tfjs-core';
import { readF32, readI32, wasmOf } from './io.js';

/**
 * Training kernels that tfjs-backend-wasm 4.22 lacks, written as plain JS loops over the
 * wasm heap copies: depthwise convolutions do little arithmetic per element, so a direct loop
 * beats building patch matrices, and segment sums are pure memory traffic.
 */
interface DepthwiseAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function depthwiseInfo(xShape: number[], filterShape: number[], a: DepthwiseAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number], a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, true,
  );
}

/** dW[kh,kw,c,m] = sum over (n,oh,ow) of x[n,ih,iw,c] * dy[n,oh,ow,c*M+m]. */
export const depthwiseBackpropFilterWasm: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const be = wasmOf(backend);
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const a = attrs as unknown as DepthwiseAttrs & { filterShape: [number, number, number, number] };
  const c = depthwiseInfo(x.shape, a.filterShape, a);
  const xv = readF32(be, x);
  const dyv = readF32(be, dy);
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CO } = c;
  const { filterHeight: KH, filterWidth: KW, strideHeight: SH, strideWidth: SW, dilationHeight: DH, dilationWidth: DW } = c;
  const M = CO / C;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const out = new Float64Array(KH * KW * CO);
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const dyBase = ((n * OH + oh) * OW + ow) * CO;
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * SH - top + kh * DH;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const iw = ow * SW - left + kw * DW;
            if (iw < 0 || iw >= W) continue;
            const xBase = ((n * H + ih) * W + iw) * C;
            const fBase = (kh * KW + kw) * CO;
            for (let ch = 0; ch < C; ch++) {
              const xval = xv[xBase + ch]!;
              for (let m = 0; m < M; m++) {
                const o = ch * M + m;
                out[fBase + o] = out[fBase + o]! + xval * dyv[dyBase + o]!;
              }
            }
          }
        }
      }
    }
  }
  return be.makeOutput(a.filterShape, 'float32', undefined, Float32Array.from(out));
};

/** dx[n,ih,iw,c] = sum over taps hitting (ih,iw) of filter[kh,kw,c,m] * dy[n,oh,ow,c*M+m]. */
export const depthwiseBackpropInputWasm: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const be = wasmOf(backend);
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as DepthwiseAttrs & { inputShape: [number, number, number, number] };
  const c = depthwiseInfo(a.inputShape, filter.shape, a);
  const fv = readF32(be, filter);
  const dyv = readF32(be, dy);
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CO } = c;
  const { filterHeight: KH, filterWidth: KW, strideHeight: SH, strideWidth: SW, dilationHeight: DH, dilationWidth: DW } = c;
  const M = CO / C;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const dx = new Float64Array(N * H * W * C);
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const dyBase = ((n * OH + oh) * OW + ow) * CO;
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * SH - top + kh * DH;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const iw = ow * SW - left + kw * DW;
            if (iw < 0 || iw >= W) continue;
            const xBase = ((n * H + ih) * W + iw) * C;
            const fBase = (kh * KW + kw) * CO;
            for (let ch = 0; ch < C; ch++) {
              let s = 0;
              for (let m = 0; m < M; m++) s += fv[fBase + ch * M + m]! * dyv[dyBase + ch * M + m]!;
              dx[xBase + ch] = dx[xBase + ch]! + s;
            }
          }
        }
      }
    }
  }
  return be.makeOutput(a.inputShape, 'float32', undefined, Float32Array.from(dx));
};

/**
 * out[s, ...] = sum of x[i, ...] over i with segmentIds[i] = s (x's leading dims are the ids'
 * shape); ids outside [0, numSegments) are dropped, as in TensorFlow. This is tf.gather's
 * gradient, so embeddings and point sampling train through it.
 */
export const unsortedSegmentSumWasm: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const be = wasmOf(backend);
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = attrs as unknown as { numSegments: number };
  const ids = readI32(be, segmentIds);
  const rest = x.shape.slice(segmentIds.shape.length);
  const inner = rest.reduce((p, d) => p * d, 1);
  const outShape = [numSegments, ...rest];
  if (x.dtype === 'int32') {
    const xv = readI32(be, x);
    const out = new Int32Array(numSegments * inner);
    for (let i = 0; i < ids.length; i++) {
      const s = ids[i]!;
      if (s < 0 || s >= numSegments) continue;
      for (let j = 0; j < inner; j++) out[s * inner + j] = out[s * inner + j]! + xv[i * inner + j]!;
    }
    return be.makeOutput(outShape, 'int32', undefined, out);
  }
  const xv = readF32(be, x);
  const out = new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue;
    const o = s * inner;
    const src = i * inner;
    for (let j = 0; j < inner; j++) out[o + j] = out[o + j]! + xv[src + j]!;
  }
  return be.makeOutput(outShape, 'float32', undefined, out);
};

/**
 * MaxPoolGrad for wasm: tfjs-backend-wasm 4.22's kernel routes dy to the wrong input positions
 * when the pooling is padded ('same': relative error 0.1-0.3 against the definition, measured;
 * 'valid' is right). Each dy goes to the first maximum of its window in row-major scan order
 * (TensorFlow's and tfjs-cpu's tie rule); padded positions never win.
 */
export const maxPoolGradWasm: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const be = wasmOf(backend);
  const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const a = attrs as unknown as { filterSize: number | [number, number]; strides: number | [number, number]; pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
  const c = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  const xv = readF32(be, input);
  const dyv = readF32(be, dy);
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = c;
  const { filterHeight: KH, filterWidth: KW, strideHeight: SH, strideWidth: SW, dilationHeight: DH, dilationWidth: DW } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const dx = new Float32Array(N * H * W * C);
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const dyBase = ((n * OH + oh) * OW + ow) * C;
        for (let ch = 0; ch < C; ch++) {
          let best = -Infinity;
          let at = -1;
          for (let kh = 0; kh < KH; kh++) {
            const ih = oh * SH - top + kh * DH;
            if (ih < 0 || ih >= H) continue;
            for (let kw = 0; kw < KW; kw++) {
              const iw = ow * SW - left + kw * DW;
              if (iw < 0 || iw >= W) continue;
              const i = ((n * H + ih) * W + iw) * C + ch;
              if (xv[i]! > best || at < 0) { best = xv[i]!; at = i; }
            }
          }
          if (at >= 0) dx[at] = dx[at]! + dyv[dyBase + ch]!;
        }
      }
    }
  }
  return be.makeOutput(input.shape, 'float32', undefined, dx);
};
