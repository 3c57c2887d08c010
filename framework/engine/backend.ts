import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { availableParallelism } from 'node:os';
import { ensureTfjsGradients } from './gradients.js';
import { installLeanGradients } from './lean-gradients.js';
import { loadNativeTfjs, oneDnnLabel } from './native-binding.js';
import { loadNativeOps } from './native-ops.js';
import { patchNativeConvKernels } from './native-kernels.js';
import { fixResizeGradients } from './resize-grad-kernels.js';
import { registerWasmFallbacks } from './wasm-fallback-kernels.js';
import { registerWasmTrainingKernels } from './wasm-kernels/index.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendPreference = 'auto' | BackendName;

export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/** What the backend chain chose, and why it skipped the rest. */
export interface BackendChoice {
  readonly name: BackendName;
  /** Where the backend came from: 'tfjs-node-gpu' | 'tfjs-node' | 'setup-native' for native, else the package. */
  readonly via: string;
  /** Backend (or native candidate) -> why it was not used. Empty when the first choice worked. */
  readonly reasons: Readonly<Record<string, string>>;
  /** Intra-op threads where known (native: TensorFlow's default = cores; wasm in Node: 1). */
  readonly threads?: number;
  /** How the choice was made: 'auto' or 'forced'. */
  readonly mode: 'auto' | 'forced';
  /** Native only: whether TensorFlow's oneDNN ops are on (config `onednn`, TF_ENABLE_ONEDNN_OPTS, else TensorFlow's CPU default). */
  readonly onednn?: 'on' | 'off' | 'unknown';
}

/** Config `onednn`: leave TensorFlow's choice (auto: TF_ENABLE_ONEDNN_OPTS, else its CPU default) or set it. */
export type OneDnnChoice = 'auto' | 'on' | 'off';

export interface InitBackendOptions {
  /** 'auto' tries tensorflow (native), then wasm, then cpu; a name forces that backend (failing loudly). */
  readonly prefer?: BackendPreference;
  readonly env?: Record<string, string | undefined>;
  /** Where the one-line choice is logged (default: stderr). `null` silences it. */
  readonly log?: ((line: string) => void) | null;
  /**
   * Native TensorFlow intra-/inter-op threads (`--threads`, config `threads`); 0 or absent:
   * RASS_THREADS, else the cores this process may use. Takes effect when the native backend
   * first loads in the process (TensorFlow sizes its pools once).
   */
  readonly threads?: number;
  /**
   * TensorFlow's oneDNN ops (config `onednn`): 'auto' (default) leaves TF_ENABLE_ONEDNN_OPTS or
   * TensorFlow's CPU default; 'on'/'off' sets it. They halve a UNet step's time and memory at
   * diffusion resolutions and slow steps of many small ops (README, memory section). Like
   * threads, it takes effect when the native backend first loads in the process.
   */
  readonly onednn?: OneDnnChoice;
}

/** The cores this process may run on (CPU affinity respected): the default thread count. */
export function defaultThreads(): number {
  return availableParallelism();
}

/** Threads the native backend was (or will be) started with, from an explicit count, RASS_THREADS or the cores. */
export function resolveThreads(threads: number | undefined, env: Record<string, string | undefined> = process.env): number {
  if (threads !== undefined && threads > 0) return Math.floor(threads);
  const fromEnv = env.RASS_THREADS === undefined ? NaN : Number(env.RASS_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  if (env.RASS_THREADS !== undefined && env.RASS_THREADS !== '' && env.RASS_THREADS !== '0') throw new Error(`RASS_THREADS: expected a positive integer, got "${env.RASS_THREADS}"`);
  return defaultThreads();
}

/** Intra-op threads of the loaded native backend (set when it loads). */
let nativeThreads: number | undefined;

/**
 * Threads host-side work may use (a compiled step's host plan split over helper threads):
 * the native backend's thread count once it loaded (`--threads`, config `threads`), else
 * RASS_THREADS or the cores. 1 keeps host work on the main thread.
 */
export function hostThreads(env: Record<string, string | undefined> = process.env): number {
  if (nativeThreads) return nativeThreads;
  try {
    return resolveThreads(undefined, env);
  } catch {
    return 1;
  }
}

let wasmRegistered = false;
let nativeState: NativeState | undefined;
let current: BackendChoice | undefined;
let loggedKey: string | undefined;
/** oneDNN as the native backend loaded with (set when it loads). */
let nativeOneDnn: 'on' | 'off' | 'unknown' = 'unknown';

/** Load the native TensorFlow backend once (registers tfjs backend "tensorflow"). */
type NativeState = { ok: true; via: string; skipped: Record<string, string> } | { ok: false; reasons: Record<string, string> };

function ensureNative(env: Record<string, string | undefined>, threads?: number, onednn: OneDnnChoice = 'auto'): NativeState {
  if (nativeState === undefined) {
    if (tf.findBackend('tensorflow') !== null) {
      nativeState = { ok: true, via: 'preloaded', skipped: {} };
      nativeThreads = Number(process.env.TF_NUM_INTRAOP_THREADS) || defaultThreads();
    } else {
      // TensorFlow reads these when it creates its thread pools (first context, at load);
      // explicit TF_NUM_* variables from the user win over our default.
      const n = resolveThreads(threads, env);
      process.env.TF_NUM_INTRAOP_THREADS = env.TF_NUM_INTRAOP_THREADS || String(n);
      process.env.TF_NUM_INTEROP_THREADS = env.TF_NUM_INTEROP_THREADS || String(n);
      nativeThreads = Number(process.env.TF_NUM_INTRAOP_THREADS) || n;
      // read by TensorFlow once, on its first op
      if (onednn !== 'auto') process.env.TF_ENABLE_ONEDNN_OPTS = onednn === 'on' ? '1' : '0';
      else if (env.TF_ENABLE_ONEDNN_OPTS !== undefined) process.env.TF_ENABLE_ONEDNN_OPTS = env.TF_ENABLE_ONEDNN_OPTS;
      const r = loadNativeTfjs(env);
      nativeState = r.ok ? { ok: true, via: r.candidate.id, skipped: r.skipped } : { ok: false, reasons: r.reasons };
    }
    if (nativeState.ok) {
      patchNativeConvKernels();
      loadNativeOps(nativeState.via);
    }
    nativeOneDnn = oneDnnLabel(process.env);
  }
  return nativeState;
}

async function ensureWasm(): Promise<void> {
  if (wasmRegistered) return;
  // In Node, tfjs-backend-wasm always takes its single-threaded (SIMD) build: its
  // WASM_HAS_MULTITHREAD_SUPPORT flag returns false under IS_NODE (tfjs issue #3830), and the
  // threaded Emscripten factory needs a browser-style global Worker and blob: URLs.
  // Its kernels replace the corrected resize gradients registered earlier (put back after
  // every load), and tfjs warns about each replacement: expected, so not shown.
  const warn = console.warn;
  console.warn = (...a: unknown[]) => {
    if (!(typeof a[0] === 'string' && a[0].includes('is already registered'))) warn(...a);
  };
  try {
    await import('@tensorflow/tfjs-backend-wasm');
  } finally {
    console.warn = warn;
  }
  registerWasmFallbacks();
  wasmRegistered = true;
}

/** Try to make `name` active; returns where it came from, or the reason it failed. */
async function trySet(name: BackendName, env: Record<string, string | undefined>, threads?: number, onednn?: OneDnnChoice): Promise<{ via: string; skipped?: Record<string, string> } | { why: string }> {
  try {
    let via: string;
    if (name === 'tensorflow') {
      const n = ensureNative(env, threads, onednn);
      if (!n.ok) {
        return { why: Object.entries(n.reasons).map(([k, v]) => `${k}: ${v}`).join('; ') };
      }
      via = n.via;
      const ok = await tf.setBackend(name);
      if (!ok) return { why: `tfjs could not initialise backend "${name}"` };
      await tf.ready();
      // Native candidates tried before the one that loaded (e.g. tfjs-node-gpu: not installed).
      return { via, skipped: n.skipped };
    } else if (name === 'wasm') {
      await ensureWasm();
      via = '@tensorflow/tfjs-backend-wasm';
    } else {
      via = '@tensorflow/tfjs-backend-cpu';
    }
    // tf.setBackend logs and returns false when the backend's factory throws; capture it.
    const ok = await tf.setBackend(name);
    if (!ok) return { why: `tfjs could not initialise backend "${name}"` };
    await tf.ready();
    // The cpu backend prints a "install tfjs-node" banner on first use; the chain has already
    // logged which backends it skipped and why (and `npm run setup:native` is the way here).
    if (name === 'cpu') (tf.backend() as { firstUse?: boolean }).firstUse = false;
    return { via };
  } catch (e) {
    return { why: (e as Error).message.split('\n')[0] ?? String(e) };
  }
}

function threadsOf(name: BackendName): number | undefined {
  if (name === 'wasm') return 1;
  if (name === 'cpu') return 1;
  return nativeThreads;
}

/**
 * The backend chain: with `prefer: 'auto'` try native TensorFlow (tfjs-node-gpu, tfjs-node,
 * then the `npm run setup:native` build), then wasm, then cpu. A forced name uses only that
 * backend and throws with the reason when it cannot start. The env variable RASS_BACKEND
 * forces one too (when `prefer` is 'auto' or absent). The choice is logged once per distinct
 * outcome and kept for `currentBackend()` / `backendRunTags()`.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendChoice> {
  const env = options.env ?? process.env;
  let prefer: BackendPreference = options.prefer ?? 'auto';
  if (prefer === 'auto' && env.RASS_BACKEND) prefer = parseBackendName(env.RASS_BACKEND, 'RASS_BACKEND');
  ensureTfjsGradients();
  if (env.RASS_TFJS_GRADIENTS !== '1') installLeanGradients();
  const order: readonly BackendName[] = prefer === 'auto' ? BACKEND_NAMES : [prefer];
  const reasons: Record<string, string> = {};
  for (const name of order) {
    const r = await trySet(name, env, options.threads, options.onednn);
    // After every load: loading tfjs-node or wasm re-registers the stock (buggy) resize gradients.
    fixResizeGradients();
    registerWasmTrainingKernels(); // fast wasm training kernels; dilated conv / gatherND gradients (every backend)
    if ('via' in r) {
      Object.assign(reasons, r.skipped);
      current = { name, via: r.via, reasons, threads: threadsOf(name), mode: prefer === 'auto' ? 'auto' : 'forced', ...(name === 'tensorflow' ? { onednn: nativeOneDnn } : {}) };
      const log = options.log === undefined ? (l: string) => process.stderr.write(l + '\n') : options.log;
      if (name === 'tensorflow' && options.threads && current.threads !== options.threads) {
        log?.(`[rass] native TensorFlow already runs ${current.threads} threads in this process; threads=${options.threads} applies to a new process`);
      }
      if (name === 'tensorflow' && options.onednn && options.onednn !== 'auto' && options.onednn !== nativeOneDnn) {
        log?.(`[rass] native TensorFlow already runs with oneDNN ${nativeOneDnn} in this process; onednn=${options.onednn} applies to a new process`);
      }
      logChoice(current, log);
      return current;
    }
    reasons[name] = r.why;
  }
  if (prefer !== 'auto') throw new Error(`backend "${prefer}" was requested but cannot start: ${reasons[prefer]}`);
  throw new Error(`no tfjs backend could start: ${Object.entries(reasons).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
}

function logChoice(c: BackendChoice, log: ((line: string) => void) | null): void {
  const skipped = Object.entries(c.reasons).map(([k, v]) => `${k} (${v})`);
  const line = `[rass] backend ${c.name} via ${c.via}${c.name === 'tensorflow' ? ` (${c.threads} threads, oneDNN ${c.onednn ?? 'unknown'})` : ''}${c.mode === 'forced' ? ' (forced)' : ''}${skipped.length ? `; skipped ${skipped.join(', ')}` : ''}`;
  if (line === loggedKey) return;
  loggedKey = line;
  log?.(line);
}

/** Validate a user-given backend name (CLI flag, config key, env). */
export function parseBackendName(value: string, where: string): BackendPreference {
  if (value === 'auto' || (BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendPreference;
  throw new Error(`${where}: unknown backend "${value}" (expected auto, ${BACKEND_NAMES.join(', ')})`);
}

/** The last choice made by initBackend/useBackend, if any. */
export function currentBackend(): BackendChoice | undefined {
  return current;
}

/** Run tags for the runner: `rass.backend`, `rass.backend.via`, `rass.backend.skipped.<name>`. */
export function backendRunTags(choice: BackendChoice | undefined = current): Record<string, string> {
  if (!choice) return {};
  const tags: Record<string, string> = { 'rass.backend': choice.name, 'rass.backend.via': choice.via };
  if (choice.name === 'tensorflow' && choice.threads) tags['rass.backend.threads'] = String(choice.threads);
  if (choice.name === 'tensorflow' && choice.onednn) tags['rass.backend.onednn'] = choice.onednn;
  for (const [k, v] of Object.entries(choice.reasons)) tags[`rass.backend.skipped.${k}`] = v;
  return tags;
}

/** Whether the native backend can be loaded here (loads it, without switching to it). */
export function nativeBackendStatus(env: Record<string, string | undefined> = process.env, threads?: number): { ok: true; via: string; skipped: Record<string, string> } | { ok: false; why: string } {
  const n = ensureNative(env, threads);
  return n.ok ? n : { ok: false, why: Object.entries(n.reasons).map(([k, v]) => `${k}: ${v}`).join('; ') };
}

/**
 * Make `name` the active tfjs backend (forced, no fallback; throws when it cannot start).
 * Kept for tests and callers that pin a backend; the chain is `initBackend`.
 */
export async function useBackend(name: BackendName): Promise<void> {
  await initBackend({ prefer: name, log: null });
}

export { tf };
