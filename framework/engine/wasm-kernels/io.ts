import * as tf from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's BackendWasm that kernels written in JS need. */
export interface WasmBackendLike {
  readSync(id: tf.DataId): tf.backend_util.BackendValues;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): tf.TensorInfo;
  disposeData(id: tf.DataId, force?: boolean): boolean;
}

export function wasmOf(backend: unknown): WasmBackendLike {
  return backend as WasmBackendLike;
}

export function readF32(backend: WasmBackendLike, t: tf.TensorInfo): Float32Array {
  const v = backend.readSync(t.dataId);
  if (v instanceof Float32Array) return v;
  return Float32Array.from(v as ArrayLike<number>);
}

export function readI32(backend: WasmBackendLike, t: tf.TensorInfo): Int32Array {
  const v = backend.readSync(t.dataId);
  if (v instanceof Int32Array) return v;
  return Int32Array.from(v as ArrayLike<number>);
}

export function num2(v: number | [number, number] | number[] | undefined, dflt: number): [number, number] {
  if (v === undefined) return [dflt, dflt];
  if (typeof v === 'number') return [v, v];
  return [v[0] ?? dflt, v[1] ?? dflt];
}
