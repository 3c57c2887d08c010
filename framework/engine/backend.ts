import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { ensureTfjsGradients } from './gradients.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

let wasmRegistered = false;

/**
 * Make `name` the active tfjs backend (minimal version; the engine's backend chain with
 * native/wasm/cpu fallback and reasons replaces this).
 */
export async function useBackend(name: BackendName): Promise<void> {
  ensureTfjsGradients();
  if (name === 'wasm' && !wasmRegistered) {
    await import('@tensorflow/tfjs-backend-wasm');
    wasmRegistered = true;
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`tfjs backend "${name}" failed to initialise`);
  await tf.ready();
}

export { tf };
