import * as tf from '@tensorflow/tfjs-core';
import { nativeBackendStatus } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';

/**
 * Whether the native TensorFlow backend can run here. `npm test` sets RASS_NATIVE_AVAILABLE
 * after `setup:native` succeeded (and prints one line when it did not); run directly, the
 * test loads the backend itself. The skip message says why.
 */
export function nativeSkipReason(): string | false {
  const s = nativeBackendStatus();
  if (s.ok) return false;
  return `native TensorFlow backend unavailable (${s.why}) -- run \`npm run setup:native\``;
}

/** Deterministic normal data, identical on every backend. */
export function normalData(key: string, n: number, std = 1): Float32Array {
  return Rng.derive(5, 'native-parity', key).fillNormal(new Float32Array(n), 0, std) as Float32Array;
}

/** max|a-b| / max(max|ref|, floor): relative to the reference's scale. */
export function relErr(a: Float32Array | Int32Array | Uint8Array, ref: Float32Array | Int32Array | Uint8Array, floor = 1e-6): number {
  if (a.length !== ref.length) return Infinity;
  let d = 0;
  let m = floor;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - ref[i]!));
    m = Math.max(m, Math.abs(ref[i]!));
  }
  return Number.isNaN(d) ? Infinity : d / m;
}

/** nativeSkipReason, and also skipped (saying so) where the native binding was built before native/patches existed. */
export function compiledSkipReason(): string | false {
  const native = nativeSkipReason();
  if (native) return native;
  const be = tf.findBackend('tensorflow') as unknown as { binding?: { registerFunction?: unknown } } | null;
  if (typeof be?.binding?.registerFunction !== 'function') return 'the native binding has no registerFunction (built without native/patches) -- rerun `npm run setup:native`';
  return false;
}

/** Names of the TensorFlow ops tfjs-node ran while `fn` ran. */
export function opsRun<T>(fn: () => T): { value: T; ops: string[] } {
  type Exec = (name: string, ...rest: unknown[]) => unknown;
  const be = tf.backend() as unknown as Record<'executeSingleOutput' | 'executeMultipleOutputs', Exec>;
  const ops: string[] = [];
  const originals = { executeSingleOutput: be.executeSingleOutput, executeMultipleOutputs: be.executeMultipleOutputs };
  for (const [key, original] of Object.entries(originals) as [keyof typeof originals, Exec][]) {
    be[key] = function (this: unknown, name: string, ...rest: unknown[]) {
      ops.push(name);
      return original.call(this, name, ...rest);
    };
  }
  try {
    return { value: fn(), ops };
  } finally {
    Object.assign(be, originals);
  }
}

export { tf };
