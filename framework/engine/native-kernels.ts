import * as tf from '@tensorflow/tfjs-core';

type KernelFunc = tf.KernelConfig['kernelFunc'];
type Pads = [[number, number], [number, number], [number, number], [number, number]];

let patched = false;

/**
 * Native kernel fixes (registered once the native backend loads).
 *
 * tfjs-node's convolution kernels accept only 'same'/'valid' padding ("TF Backend supports
 * only 'valid' and 'same' padding while padding was EXPLICIT"), but the project's models pad
 * explicitly ([[0,0],[p,p],[p,p],[0,0]], PyTorch-style). Explicit padding equals a 'valid'
 * convolution of the zero-padded input, so these wrappers pad with TensorFlow's Pad, run the
 * original kernel with 'valid', and (for the input gradient) slice the padding off again.
 * Only explicit-padding calls are rerouted; everything else goes straight to tfjs-node.
 */
export function patchNativeConvKernels(): void {
  if (patched) return;
  const get = (name: string): KernelFunc => {
    const k = tf.getKernel(name, 'tensorflow');
    if (!k) throw new Error(`native backend has no ${name} kernel`);
    return k.kernelFunc;
  };
  const pad = get('PadV2');
  const slice = get('Slice');
  const padInput = (x: tf.TensorInfo, pads: Pads, backend: object) => pad({ inputs: { x }, backend, attrs: { paddings: pads, constantValue: 0 } }) as tf.TensorInfo;
  const explicit = (attrs: tf.NamedAttrMap | undefined): Pads | null => (attrs && Array.isArray(attrs.pad) ? (attrs.pad as unknown as Pads) : null);
  const isZero = (p: Pads) => p.every(([a, b]) => a === 0 && b === 0);

  // forward convs and filter gradients both read x: pad it explicitly, then run 'valid'
  const wrapPaddedInput = (name: string) => {
    const orig = get(name);
    tf.registerKernel({
      kernelName: name,
      backendName: 'tensorflow',
      kernelFunc: (args) => {
        const pointwise = pointwiseConv(name, args);
        if (pointwise) return pointwise;
        const pads = explicit(args.attrs);
        if (!pads) return orig(args);
        const x = args.inputs.x as tf.TensorInfo;
        const xp = isZero(pads) ? x : padInput(x, pads, args.backend);
        const out = orig({ ...args, inputs: { ...args.inputs, x: xp }, attrs: { ...args.attrs, pad: 'valid' } });
        if (xp !== x) disposeData(args.backend, xp.dataId);
        return out;
      },
    });
  };
  const wrapInputGrad = (name: string) => {
    const orig = get(name);
    tf.registerKernel({
      kernelName: name,
      backendName: 'tensorflow',
      kernelFunc: (args) => {
        const pointwise = pointwiseConv(name, args);
        if (pointwise) return pointwise;
        const pads = explicit(args.attrs);
        if (!pads) return orig(args);
        const inputShape = args.attrs!.inputShape as unknown as number[];
        const paddedShape = inputShape.map((d, i) => d + pads[i]![0] + pads[i]![1]);
        const full = orig({ ...args, attrs: { ...args.attrs, pad: 'valid', inputShape: paddedShape } }) as tf.TensorInfo;
        if (isZero(pads)) return full;
        const out = slice({ inputs: { x: full }, backend: args.backend, attrs: { begin: pads.map((p) => p[0]), size: inputShape } });
        disposeData(args.backend, full.dataId);
        return out;
      },
    });
  };
  const silenced = console.warn;
  // Re-registering a kernel warns ("already registered"); these replacements are deliberate.
  console.warn = () => {};
  try {
    wrapPaddedInput('Conv2D');
    wrapPaddedInput('Conv2DBackpropFilter');
    wrapInputGrad('Conv2DBackpropInput');
    wrapPaddedInput('DepthwiseConv2dNative');
    wrapPaddedInput('DepthwiseConv2dNativeBackpropFilter');
    wrapInputGrad('DepthwiseConv2dNativeBackpropInput');
    registerResizeGrads();
    registerMatMul2d(get('BatchMatMul'));
    registerSmallTranspose(get('Transpose'));
    markGatherBoundsCheck(get('GatherV2'));
  } finally {
    console.warn = silenced;
  }
  patched = true;
}

interface NativeBackend {
  binding: { TF_ATTR_BOOL: number; TF_ATTR_TYPE: number; TF_FLOAT: number; TF_INT32: number };
  executeSingleOutput(op: string, attrs: { name: string; type: number; value: unknown }[], inputs: unknown[]): tf.TensorInfo;
}

/**
 * tfjs-node's resize gradient kernels pass TensorFlow only align_corners, so with
 * halfPixelCenters (PyTorch's align_corners=False bilinear) the gradient is that of a
 * different resize. Same ops, with half_pixel_centers passed through.
 */
let boundsChecks = 0;

/** True while tfjs-node's GatherV2 kernel reads its indices on the host for its bounds check. */
export function inGatherBoundsCheck(): boolean {
  return boundsChecks > 0;
}

/**
 * tfjs-node's GatherV2 reads every index on the host to assert it is in range before running
 * TensorFlow's GatherV2. The read does not change the result, but to a compiled step's
 * recorder (compile.ts) it looks like the step needs a value on the host, so a gather with
 * computed indices (grid sampling, the criterion's matched rows) would keep the step eager.
 * The kernel is unchanged; it only marks its read so the recorder can let it pass. In the
 * compiled function TensorFlow's own GatherV2 checks the range (on CPU an error, as here).
 */
function markGatherBoundsCheck(orig: KernelFunc): void {
  tf.registerKernel({
    kernelName: 'GatherV2',
    backendName: 'tensorflow',
    kernelFunc: (args) => {
      boundsChecks++;
      try {
        return orig(args);
      } finally {
        boundsChecks--;
      }
    },
  });
}

/**
 * tfjs-node runs every matMul as TensorFlow's BatchMatMulV2, also for two rank-2 operands (every
 * Linear layer: tokens are flattened to rows). With oneDNN on (TensorFlow's default on CPUs with
 * AVX-512 VNNI/BF16, see `rass doctor`), its BatchMatMul kernel costs about twice MatMul's for
 * the small products of a compact model (measured on the tiny UNet's compiled step: 165
 * products, 19 ms of 55) and no less for large ones, so rank-2 products run as MatMul (the same
 * product, transpose_a/b for adj_x/adj_y); batched ones stay BatchMatMulV2.
 */
function registerMatMul2d(orig: KernelFunc): void {
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: 'tensorflow',
    kernelFunc: (args) => {
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      if (a.shape.length !== 2 || b.shape.length !== 2 || a.dtype !== 'float32') return orig(args);
      const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
      return matMul(args.backend as unknown as NativeBackend, a, b, Boolean(transposeA), Boolean(transposeB));
    },
  });
}

type Attr = { name: string; type: number; value: unknown };
const floatT = (be: NativeBackend): Attr => ({ name: 'T', type: be.binding.TF_ATTR_TYPE, value: be.binding.TF_FLOAT });
const reshapeAttrs = (be: NativeBackend): Attr[] => [floatT(be), { name: 'Tshape', type: be.binding.TF_ATTR_TYPE, value: be.binding.TF_INT32 }];

/** TensorFlow ops applied in turn to `x` (each step: op, attrs, further inputs); the intermediates are disposed as soon as they are used, `x` stays the caller's. */
function chain(be: NativeBackend, x: tf.TensorInfo, steps: [string, Attr[], tf.TensorInfo[]][]): tf.TensorInfo {
  let t = x;
  steps.forEach(([op, attrs, rest], i) => {
    const next = be.executeSingleOutput(op, attrs, [t, ...rest]);
    if (i > 0) disposeData(be, t.dataId);
    t = next;
  });
  return t;
}

function reshape(be: NativeBackend, x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  const s = tf.tensor1d(shape, 'int32');
  try {
    return be.executeSingleOutput('Reshape', reshapeAttrs(be), [x, s]);
  } finally {
    s.dispose();
  }
}

/** TensorFlow's MatMul of two float matrices. */
function matMul(be: NativeBackend, a: tf.TensorInfo, b: tf.TensorInfo, ta: boolean, tb: boolean): tf.TensorInfo {
  return be.executeSingleOutput('MatMul', [floatT(be), { name: 'transpose_a', type: be.binding.TF_ATTR_BOOL, value: ta }, { name: 'transpose_b', type: be.binding.TF_ATTR_BOOL, value: tb }], [a, b]);
}

/** reshape(a) x reshape(b) (transposed as asked), reshaped to `shape`; only the result stays. */
function matMulAs(be: NativeBackend, a: tf.TensorInfo, aShape: number[], b: tf.TensorInfo, bShape: number[], ta: boolean, tb: boolean, shape: number[]): tf.TensorInfo {
  const a2 = reshape(be, a, aShape);
  const b2 = reshape(be, b, bShape);
  const y = matMul(be, a2, b2, ta, tb);
  const out = reshape(be, y, shape);
  for (const t of [a2, b2, y]) disposeData(be, t.dataId);
  return out;
}

/**
 * A 1x1 convolution with unit strides and dilations and no padding is a matrix product over
 * the pixels: [b*h*w, cin] x [cin, cout]. So are its input gradient (dy x W^T) and filter
 * gradient (X^T x dy). On the small activations of a compact model (LoRA's rank-4 up
 * projections, resnet shortcuts, attention in/out projections) oneDNN's convolution
 * primitives (oneDNN on) cost 0.5-2 ms each where the product takes tens of microseconds; on
 * large ones the product is as fast (the same GEMM). Returns null where the shortcut does not
 * apply.
 */
function pointwiseConv(name: string, args: Parameters<KernelFunc>[0]): tf.TensorInfo | null {
  const a = args.attrs as unknown as { strides: number | number[]; dilations?: number | number[]; pad: unknown; dataFormat?: string; filterShape?: number[] };
  const ones = (v: number | number[] | undefined) => v === undefined || (Array.isArray(v) ? v.every((d) => d === 1) : v === 1);
  const noPad = a.pad === 'valid' || a.pad === 'same' || (Array.isArray(a.pad) && (a.pad as number[][]).every(([p, q]) => p === 0 && q === 0));
  if (!ones(a.strides) || !ones(a.dilations) || !noPad || (a.dataFormat !== undefined && a.dataFormat !== 'NHWC')) return null;
  const be = args.backend as unknown as NativeBackend;
  const pointwise = (f: number[]) => f[0] === 1 && f[1] === 1;
  if (name === 'Conv2D') {
    const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
    const [, , ci, co] = filter.shape as number[];
    if (!pointwise(filter.shape) || x.dtype !== 'float32') return null;
    const [b, h, w] = x.shape as number[];
    return matMulAs(be, x, [b! * h! * w!, ci!], filter, [ci!, co!], false, false, [b!, h!, w!, co!]);
  }
  if (name === 'Conv2DBackpropInput') {
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const [, , ci, co] = filter.shape as number[];
    if (!pointwise(filter.shape) || dy.dtype !== 'float32') return null;
    const [b, h, w] = dy.shape as number[];
    return matMulAs(be, dy, [b! * h! * w!, co!], filter, [ci!, co!], false, true, [b!, h!, w!, ci!]);
  }
  if (name === 'Conv2DBackpropFilter') {
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const f = a.filterShape as number[];
    if (!pointwise(f) || x.dtype !== 'float32') return null;
    const [b, h, w] = x.shape as number[];
    return matMulAs(be, x, [b! * h! * w!, f[2]!], dy, [b! * h! * w!, f[3]!], true, false, f);
  }
  return null;
}

/**
 * Transposes of small float tensors (attention heads split and merged in the heads' decoders,
 * a few thousand values) run on the values' bits as int32: oneDNN's transpose, which TensorFlow
 * substitutes for float tensors when oneDNN is on, costs 0.1-4 ms on such a tensor inside a
 * step where Eigen's takes microseconds. Bitcast is free and the bits are unchanged; large tensors stay with
 * oneDNN, which is faster there.
 */
const SMALL_TRANSPOSE = 16384;

function registerSmallTranspose(orig: KernelFunc): void {
  tf.registerKernel({
    kernelName: 'Transpose',
    backendName: 'tensorflow',
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const size = x.shape.reduce((p, d) => p * d, 1);
      if (x.dtype !== 'float32' || size > SMALL_TRANSPOSE || size === 0) return orig(args);
      const be = args.backend as unknown as NativeBackend;
      const perm = tf.tensor1d(args.attrs!.perm as number[], 'int32');
      const ty = be.binding.TF_ATTR_TYPE;
      const { TF_FLOAT, TF_INT32 } = be.binding;
      try {
        return chain(be, x, [
          ['Bitcast', [{ name: 'T', type: ty, value: TF_FLOAT }, { name: 'type', type: ty, value: TF_INT32 }], []],
          ['Transpose', [{ name: 'T', type: ty, value: TF_INT32 }, { name: 'Tperm', type: ty, value: TF_INT32 }], [perm]],
          ['Bitcast', [{ name: 'T', type: ty, value: TF_INT32 }, { name: 'type', type: ty, value: TF_FLOAT }], []],
        ]);
      } finally {
        perm.dispose();
      }
    },
  });
}

function registerResizeGrads(): void {
  const attrsOf = (be: NativeBackend, attrs: tf.NamedAttrMap | undefined) => [
    { name: 'T', type: be.binding.TF_ATTR_TYPE, value: be.binding.TF_FLOAT },
    { name: 'align_corners', type: be.binding.TF_ATTR_BOOL, value: Boolean(attrs?.alignCorners) },
    { name: 'half_pixel_centers', type: be.binding.TF_ATTR_BOOL, value: Boolean(attrs?.halfPixelCenters) },
  ];
  tf.registerKernel({
    kernelName: 'ResizeBilinearGrad',
    backendName: 'tensorflow',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const be = backend as unknown as NativeBackend;
      return be.executeSingleOutput('ResizeBilinearGrad', attrsOf(be, attrs), [inputs.dy, inputs.images]);
    },
  });
  tf.registerKernel({
    kernelName: 'ResizeNearestNeighborGrad',
    backendName: 'tensorflow',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const be = backend as unknown as NativeBackend;
      const [, h, w] = (inputs.images as tf.TensorInfo).shape;
      const block = nearestBlock(inputs.dy as tf.TensorInfo, h!, w!, attrs);
      // An exact 2x/4x/8x upsampling replicates each pixel into a block: its gradient is the
      // block sum, as Reshapes and Sums (ops XLA compiles; it has no ResizeNearestNeighborGrad).
      // Two sums over a middle axis of a 3-D view (first the block's columns, then its rows):
      // TensorFlow's CPU reduction over the rank-6 view's axes [2, 4] in one Sum is 6-8x slower.
      if (block) {
        const [b, oh, ow, c] = (inputs.dy as tf.TensorInfo).shape as number[];
        const fy = oh! / h!;
        const fx = ow! / w!;
        const sumAttrs = [{ name: 'keep_dims', type: be.binding.TF_ATTR_BOOL, value: false }, floatT(be), { name: 'Tidx', type: be.binding.TF_ATTR_TYPE, value: be.binding.TF_INT32 }];
        const consts = [tf.tensor1d([b! * oh! * w!, fx, c!], 'int32'), tf.tensor1d([b! * h!, fy, w! * c!], 'int32'), tf.tensor1d([b!, h!, w!, c!], 'int32'), tf.scalar(1, 'int32')];
        const [cols, rows, image, middle] = consts as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        const t = chain(be, inputs.dy as tf.TensorInfo, [
          ['Reshape', reshapeAttrs(be), [cols]],
          ['Sum', sumAttrs, [middle]],
          ['Reshape', reshapeAttrs(be), [rows]],
          ['Sum', sumAttrs, [middle]],
          ['Reshape', reshapeAttrs(be), [image]],
        ]);
        tf.dispose(consts);
        return t;
      }
      const size = tf.tensor1d([h!, w!], 'int32');
      const out = be.executeSingleOutput('ResizeNearestNeighborGrad', attrsOf(be, attrs), [inputs.dy, size]);
      size.dispose();
      return out;
    },
  });
}

/**
 * Whether a nearest-neighbour resize (no corner alignment, no half-pixel centres) from h x w to
 * dy's size is an exact 2x, 4x or 8x upsampling on both axes: there TensorFlow's source index
 * floor(i * (in / out)) is exactly i / factor (a power-of-two scale is exact in float32).
 */
function nearestBlock(dy: tf.TensorInfo, h: number, w: number, attrs: tf.NamedAttrMap | undefined): boolean {
  if (attrs?.alignCorners || attrs?.halfPixelCenters) return false;
  const [, oh, ow] = dy.shape as number[];
  const pow2 = (f: number) => f === 2 || f === 4 || f === 8;
  return oh! % h === 0 && ow! % w === 0 && pow2(oh! / h) && pow2(ow! / w);
}

function disposeData(backend: object, dataId: tf.DataId): void {
  (backend as tf.KernelBackend).disposeData(dataId);
}
