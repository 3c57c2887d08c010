import * as tf from '@tensorflow/tfjs-core';
import { readF32, wasmOf, type WasmBackendLike } from './io.js';

/**
 * Conv2DBackpropFilter for the wasm backend (tfjs-backend-wasm 4.22 has none):
 * dW[kh,kw,ci,co] = sum over (n,oh,ow) of patch(x)[kh,kw,ci] * dy[n,oh,ow,co], i.e.
 * im2col(x)^T @ dy. The patch matrix is built in JS, transposed by wasm's Transpose kernel and
 * multiplied by wasm's BatchMatMul (XNNPACK), in row blocks so the patch matrix stays under
 * ~16M floats. (BatchMatMul with transposeA is ~12x slower than an explicit transpose plus a
 * plain product on tfjs-backend-wasm 4.22: measured 11.7 ms vs 1.0 ms for 288x2048 @ 2048x32.)
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
  const tr = tf.getKernel('Transpose', 'wasm');
  if (!mm || !tr) throw new Error('wasm Conv2DBackpropFilter: the wasm BatchMatMul / Transpose kernels are not registered');
  const be = backend as unknown as tf.KernelBackend;
  const cols = new Float32Array(rowsPerBlock * K);
  let blocks = 0;
  for (let p0 = 0; p0 < P; p0 += rowsPerBlock) {
    const rows = Math.min(rowsPerBlock, P - p0);
    const colv = rows === rowsPerBlock ? cols : cols.subarray(0, rows * K);
    colv.fill(0);
    for (let r = 0; r < rows; r++) {
      const p = p0 + r;
      const n = Math.floor(p / (OH * OW));
      const rem = p - n * OH * OW;
      const oh = Math.floor(rem / OW);
      const ow = rem - oh * OW;
      let o = r * K;
      for (let kh = 0; kh < KH; kh++) {
        const ih = oh * SH - top + kh * DH;
        if (ih < 0 || ih >= H) { o += KW * CI; continue; }
        for (let kw = 0; kw < KW; kw++, o += CI) {
          const iw = ow * SW - left + kw * DW;
          if (iw < 0 || iw >= W) continue;
          const src = ((n * H + ih) * W + iw) * CI;
          colv.set(xv.subarray(src, src + CI), o);
        }
      }
    }
    const aT = backend.makeOutput([1, rows, K], 'float32', undefined, colv);
    const bT = backend.makeOutput([1, rows, CO], 'float32', undefined, dyv.subarray(p0 * CO, (p0 + rows) * CO));
    let aTT: tf.TensorInfo | undefined;
    try {
      aTT = tr.kernelFunc({ inputs: { x: aT }, backend: be, attrs: { perm: [0, 2, 1] } }) as tf.TensorInfo;
      const res = mm.kernelFunc({ inputs: { a: aTT, b: bT }, backend: be, attrs: { transposeA: false, transposeB: false } }) as tf.TensorInfo;
      const v = backend.readSync(res.dataId) as Float32Array;
      if (blocks === 0) acc.set(v);
      else for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + v[i]!;
      backend.disposeData(res.dataId);
    } finally {
      if (aTT) backend.disposeData(aTT.dataId);
      backend.disposeData(aT.dataId);
      backend.disposeData(bT.dataId);
    }
    blocks++;
  }
  return acc;
}
