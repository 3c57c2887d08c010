import * as tf from '@tensorflow/tfjs-core';
import { readF32, wasmOf, type WasmBackendLike } from './io.js';

/**
 * Conv2DBackpropFilter for the wasm backend (tfjs-backend-wasm 4.22 has none):
 * dW[kh,kw,ci,co] = sum over (n,oh,ow) of patch(x)[kh,kw,ci] * dy[n,oh,ow,co], i.e.
 * im2col(x)^T @ dy. The transposed patch matrix [K, rows] is built in JS and multiplied by
 * wasm's BatchMatMul (XNNPACK) without transpose flags, in row blocks so the patch matrix stays
 * under ~16M floats. (On tfjs-backend-wasm 4.22, BatchMatMul with transposeA is ~12x slower
 * than a plain product: 11.7 ms vs 1.0 ms for 288x2048 @ 2048x32; the wasm Transpose kernel
 * plus a plain product took 4.4 ms + 1.2 ms; writing the transposed layout directly is cheapest.)
 * Dilations are honoured when present in attrs (the dilation-capable gradient in
 * conv-gradients.ts does not rely on that: it differentiates a zero-dilated filter).
 */
const MAX_BLOCK_FLOATS = 1 << 24;

export interface ConvBackpropFilterAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
  dilations?: number | [number, number];
}

export function conv2dBackpropFilterWasm(fallback: tf.KernelFunc | undefined): tf.KernelFunc {
  return (args) => {
    const { inputs, attrs } = args;
    const a = attrs as unknown as ConvBackpropFilterAttrs;
    if ((a.dataFormat ?? 'NHWC') !== 'NHWC') {
      // NCHW never occurs in the project's models; the cpu-backed fallback stays correct for it.
      if (!fallback) throw new Error('wasm Conv2DBackpropFilter: only NHWC is implemented');
      return fallback(args);
    }
    const backend = wasmOf(args.backend);
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number], a.filterShape, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, false, 'channelsLast',
    );
    const out = filterGrad(backend, readF32(backend, x), readF32(backend, dy), info);
    return backend.makeOutput(a.filterShape, 'float32', undefined, out);
  };
}

function filterGrad(backend: WasmBackendLike, xv: Float32Array, dyv: Float32Array, c: tf.backend_util.Conv2DInfo): Float32Array {
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: CI, outHeight: OH, outWidth: OW, outChannels: CO } = c;
  const { filterHeight: KH, filterWidth: KW, strideHeight: SH, strideWidth: SW, dilationHeight: DH, dilationWidth: DW } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const K = KH * KW * CI;
  const P = N * OH * OW;
  const acc = new Float32Array(K * CO);
  if (P === 0) return acc;
  const rowsPerBlock = Math.max(1, Math.min(P, Math.floor(MAX_BLOCK_FLOATS / K)));
  const mm = tf.getKernel('BatchMatMul', 'wasm');
  if (!mm) throw new Error('wasm Conv2DBackpropFilter: the wasm BatchMatMul kernel is not registered');
  const be = backend as unknown as tf.KernelBackend;
  const cols = new Float32Array(rowsPerBlock * K);
  const rowN = new Int32Array(rowsPerBlock);
  const rowH = new Int32Array(rowsPerBlock);
  const rowW = new Int32Array(rowsPerBlock);
  const src = new Int32Array(rowsPerBlock);
  let blocks = 0;
  for (let p0 = 0; p0 < P; p0 += rowsPerBlock) {
    const rows = Math.min(rowsPerBlock, P - p0);
    const colv = rows === rowsPerBlock ? cols : cols.subarray(0, rows * K);
    // Patch matrix written transposed, [K, rows], so the product needs no transpose. For each
    // tap (kh, kw) the source offsets of all rows are found first; the copy then writes each
    // output row contiguously (strided writes were 4x slower than strided reads).
    for (let r = 0; r < rows; r++) {
      const p = p0 + r;
      const n = Math.floor(p / (OH * OW));
      const rem = p - n * OH * OW;
      const oh = Math.floor(rem / OW);
      rowN[r] = n;
      rowH[r] = oh * SH - top;
      rowW[r] = (rem - oh * OW) * SW - left;
    }
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        for (let r = 0; r < rows; r++) {
          const ih = rowH[r]! + kh * DH;
          const iw = rowW[r]! + kw * DW;
          src[r] = ih < 0 || ih >= H || iw < 0 || iw >= W ? -1 : ((rowN[r]! * H + ih) * W + iw) * CI;
        }
        const kBase = (kh * KW + kw) * CI;
        for (let ci = 0; ci < CI; ci++) {
          const o = (kBase + ci) * rows;
          for (let r = 0; r < rows; r++) {
            const sIdx = src[r]!;
            colv[o + r] = sIdx < 0 ? 0 : xv[sIdx + ci]!;
          }
        }
      }
    }
    const aT = backend.makeOutput([1, K, rows], 'float32', undefined, colv);
    const bT = backend.makeOutput([1, rows, CO], 'float32', undefined, dyv.subarray(p0 * CO, (p0 + rows) * CO));
    try {
      const res = mm.kernelFunc({ inputs: { a: aT, b: bT }, backend: be, attrs: { transposeA: false, transposeB: false } }) as tf.TensorInfo;
      const v = backend.readSync(res.dataId) as Float32Array;
      if (blocks === 0) acc.set(v);
      else for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + v[i]!;
      backend.disposeData(res.dataId);
    } finally {
      backend.disposeData(aT.dataId);
      backend.disposeData(bT.dataId);
    }
    blocks++;
  }
  return acc;
}
