import * as tf from '@tensorflow/tfjs-core';
import { wasmOf } from './io.js';

/**
 * Einsum on wasm (tfjs-backend-wasm 4.22 has none) by running tfjs-backend-cpu's kernel on
 * copies. Einsum passes its operands as an *array* of tensors; the generic cpu fallback in
 * ../wasm-fallback-kernels.ts rebuilds inputs as a keyed object, which the cpu kernel rejects
 * ("Expected 2 input tensors, received undefined"). Forward only: tfjs has no einsum
 * gradient on any backend, and no project model uses einsum (tests use it as a reference).
 */
export const einsumWasm: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = wasmOf(backend);
  const cpu = tf.findBackend('cpu');
  const kernel = tf.getKernel('Einsum', 'cpu');
  if (!cpu || !kernel) throw new Error('wasm Einsum: the cpu backend or its Einsum kernel is not registered');
  const operands = (Array.isArray(inputs) ? inputs : Object.values(inputs)) as tf.TensorInfo[];
  const moved = operands.map((t) => ({ dataId: cpu.write(wasm.readSync(t.dataId), t.shape, t.dtype), shape: t.shape, dtype: t.dtype }));
  try {
    const out = kernel.kernelFunc({ inputs: moved as unknown as tf.NamedTensorInfoMap, backend: cpu, attrs }) as tf.TensorInfo;
    const values = cpu.readSync(out.dataId);
    cpu.disposeData(out.dataId);
    return wasm.makeOutput(out.shape, out.dtype, undefined, values);
  } finally {
    for (const m of moved) cpu.disposeData(m.dataId);
  }
};
