import * as tf from '@tensorflow/tfjs-core';

/**
 * tfjs-backend-wasm 4.22 lacks some kernels that training needs (the filter gradient of
 * conv2d, both depthwise gradients, gather's gradient UnsortedSegmentSum, einsum), so a conv
 * net cannot train on wasm at all. Until native wasm kernels exist, each missing one runs the
 * cpu backend's kernel on copies of its inputs: correct, and slow only for these ops. A
 * kernel already registered for wasm (e.g. by a later engine version) is left alone.
 */
const FALLBACKS = ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'UnsortedSegmentSum', 'Einsum'];

interface WasmLike {
  readSync(id: tf.DataId): tf.backend_util.BackendValues;
  makeOutput(shape: number[], dtype: tf.DataType, off: undefined, values: tf.backend_util.BackendValues): tf.TensorInfo;
}

function viaCpu(kernelName: string): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const wasm = backend as unknown as WasmLike;
    const cpu = tf.findBackend('cpu');
    const kernel = tf.getKernel(kernelName, 'cpu');
    if (!cpu || !kernel) throw new Error(`wasm fallback for ${kernelName}: no cpu kernel`);
    const moved: tf.DataId[] = [];
    const cpuInputs: Record<string, tf.TensorInfo> = {};
    for (const [k, t] of Object.entries(inputs)) {
      if (!t) continue;
      const dataId = cpu.write(wasm.readSync(t.dataId), t.shape, t.dtype);
      moved.push(dataId);
      cpuInputs[k] = { dataId, shape: t.shape, dtype: t.dtype };
    }
    try {
      const out = kernel.kernelFunc({ inputs: cpuInputs, backend: cpu, attrs });
      const outs = Array.isArray(out) ? out : [out];
      const back = outs.map((o) => {
        const v = cpu.readSync(o.dataId);
        cpu.disposeData(o.dataId);
        return wasm.makeOutput(o.shape, o.dtype, undefined, v);
      });
      return Array.isArray(out) ? back : back[0]!;
    } finally {
      for (const id of moved) cpu.disposeData(id);
    }
  };
}

/** Register cpu-backed wasm kernels for the ones wasm lacks (after the wasm backend is imported). */
export function registerWasmFallbacks(): string[] {
  const added: string[] = [];
  for (const name of FALLBACKS) {
    if (tf.getKernel(name, 'wasm')) continue;
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: viaCpu(name) });
    added.push(name);
  }
  return added;
}
