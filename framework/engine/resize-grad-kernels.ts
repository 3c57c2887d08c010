import * as tf from '@tensorflow/tfjs-core';

/**
 * Corrected resize gradients. tfjs 4.22's stock kernels are wrong:
 * - ResizeNearestNeighborGrad offsets dy by the *input's* batch stride, so every batch item
 *   after the first reads the wrong dy (wrong gradients for batch > 1), and it ignores
 *   halfPixelCenters;
 * - cpu ResizeBilinearGrad returns shape [b, w, h, c] (fails for non-square images) and ignores
 *   halfPixelCenters;
 * - the wasm grad kernels ignore halfPixelCenters too (so do tfjs-node's: native-kernels.ts).
 * On cpu and wasm both are replaced by the exact transposes (scatter-adds) of the forward
 * kernels' sampling (the same on every backend), checked by the adjoint identity in
 * tests/unit/native/resize-grad-adjoint.test.ts. Registered again after every backend load:
 * loading tfjs-node re-registers the stock cpu kernels, importing the wasm backend its own.
 */
interface Io {
  read(backend: unknown, t: tf.TensorInfo): ArrayLike<number>;
  make(backend: unknown, shape: number[], values: Float32Array): tf.TensorInfo;
}

const cpuIo: Io = {
  read: (b, t) => (b as { data: { get(id: tf.DataId): { values: Float32Array } } }).data.get(t.dataId).values,
  make: (b, shape, v) => (b as { makeTensorInfo(s: number[], d: tf.DataType, v: Float32Array): tf.TensorInfo }).makeTensorInfo(shape, 'float32', v),
};
const wasmIo: Io = {
  read: (b, t) => (b as { readSync(id: tf.DataId): Float32Array }).readSync(t.dataId),
  make: (b, shape, v) => (b as { makeOutput(s: number[], d: tf.DataType, off: undefined, v: Float32Array): tf.TensorInfo }).makeOutput(shape, 'float32', undefined, v),
};

interface ResizeGeometry {
  /** Source coordinate for output index i along one axis. */
  frac(i: number): number;
}

function axis(inSize: number, outSize: number, alignCorners: boolean, halfPixel: boolean, bilinear: boolean): ResizeGeometry {
  const effIn = alignCorners && outSize > 1 ? inSize - 1 : inSize;
  const effOut = alignCorners && outSize > 1 ? outSize - 1 : outSize;
  const ratio = effIn / effOut;
  return { frac: (i) => (halfPixel ? ratio * (i + 0.5) - (bilinear ? 0.5 : 0) : ratio * i) };
}

function shapes(images: tf.TensorInfo, dy: tf.TensorInfo): [number, number, number, number, number, number] {
  const [b, h, w, c] = images.shape as [number, number, number, number];
  const [, oh, ow] = dy.shape as [number, number, number, number];
  return [b, h, w, c, oh, ow];
}

const nearestGrad = (io: Io): tf.KernelFunc => ({ inputs, backend, attrs }) => {
  const { images, dy } = inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
  const { alignCorners, halfPixelCenters } = attrs as unknown as { alignCorners: boolean; halfPixelCenters: boolean };
  const [b, h, w, c, oh, ow] = shapes(images, dy);
  const dyv = io.read(backend, dy);
  const acc = new Float64Array(b * h * w * c);
  const ay = axis(h, oh, alignCorners, halfPixelCenters, false);
  const ax = axis(w, ow, alignCorners, halfPixelCenters, false);
  const src = (f: number, n: number) => {
    const i = Math.min(n - 1, alignCorners ? Math.round(f) : Math.floor(f));
    return halfPixelCenters ? Math.max(0, i) : i;
  };
  const sx = Array.from({ length: ow }, (_, x) => src(ax.frac(x), w));
  let o = 0;
  for (let n = 0; n < b; n++)
    for (let y = 0; y < oh; y++) {
      const row = (n * h + src(ay.frac(y), h)) * w;
      for (let x = 0; x < ow; x++) {
        const base = (row + sx[x]!) * c;
        for (let d = 0; d < c; d++) acc[base + d]! += dyv[o++]!;
      }
    }
  return io.make(backend, [b, h, w, c], Float32Array.from(acc));
};

const bilinearGrad = (io: Io): tf.KernelFunc => ({ inputs, backend, attrs }) => {
  const { images, dy } = inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
  const { alignCorners, halfPixelCenters } = attrs as unknown as { alignCorners: boolean; halfPixelCenters: boolean };
  const [b, h, w, c, oh, ow] = shapes(images, dy);
  const dyv = io.read(backend, dy);
  const acc = new Float64Array(b * h * w * c);
  const ay = axis(h, oh, alignCorners, halfPixelCenters, true);
  const ax = axis(w, ow, alignCorners, halfPixelCenters, true);
  // Same taps and weights as the cpu forward: lo = max(0, floor(f)), hi = min(n-1, ceil(f)), t = f - lo.
  const taps = (f: number, n: number): [number, number, number] => {
    const lo = Math.max(0, Math.floor(f));
    return [lo, Math.min(n - 1, Math.ceil(f)), f - lo];
  };
  const cols = Array.from({ length: ow }, (_, x) => taps(ax.frac(x), w));
  let o = 0;
  for (let n = 0; n < b; n++)
    for (let y = 0; y < oh; y++) {
      const [r0, r1, rf] = taps(ay.frac(y), h);
      const top = (n * h + r0) * w;
      const bot = (n * h + r1) * w;
      for (let x = 0; x < ow; x++) {
        const [c0, c1, cf] = cols[x]!;
        const wtl = (1 - cf) * (1 - rf);
        const wtr = cf * (1 - rf);
        const wbl = (1 - cf) * rf;
        const wbr = cf * rf;
        const tl = (top + c0) * c;
        const tr = (top + c1) * c;
        const bl = (bot + c0) * c;
        const br = (bot + c1) * c;
        for (let d = 0; d < c; d++) {
          const g = dyv[o++]!;
          acc[tl + d]! += g * wtl;
          acc[tr + d]! += g * wtr;
          acc[bl + d]! += g * wbl;
          acc[br + d]! += g * wbr;
        }
      }
    }
  return io.make(backend, [b, h, w, c], Float32Array.from(acc));
};

/** (Re-)register the corrected cpu and wasm resize gradients. Cheap; call after any backend load. */
export function fixResizeGradients(): void {
  const warn = console.warn;
  // Re-registering warns ("already registered"); the replacement is deliberate.
  console.warn = () => {};
  try {
    for (const [backendName, io] of [['cpu', cpuIo], ['wasm', wasmIo]] as const) {
      tf.registerKernel({ kernelName: 'ResizeNearestNeighborGrad', backendName, kernelFunc: nearestGrad(io) });
      tf.registerKernel({ kernelName: 'ResizeBilinearGrad', backendName, kernelFunc: bilinearGrad(io) });
    }
  } finally {
    console.warn = warn;
  }
}
