import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';

export interface NativeCandidate {
  /** How it is referred to in logs and run tags. */
  id: 'tfjs-node-gpu' | 'tfjs-node' | 'setup-native';
  /** Where it is loaded from. */
  from: string;
}

export type NativeLoad = { ok: true; candidate: NativeCandidate; module: unknown; skipped: Record<string, string> } | { ok: false; reasons: Record<string, string> };

/**
 * TensorFlow prints start-up notices (absl's "log messages before InitializeLog", oneDNN,
 * CPU-feature hints) on every process that loads it: noise for a user. They are silenced
 * unless `RASS_TF_LOG` is set (to anything: TensorFlow then logs at its own default level, or
 * at `TF_CPP_MIN_LOG_LEVEL` when that is set too). Must run before the binding loads: the
 * C++ side reads the variable once, at load time.
 */
export function quietTensorFlowLogs(env: Record<string, string | undefined> = process.env): void {
  if (env.RASS_TF_LOG) {
    process.env.TF_CPP_MIN_LOG_LEVEL = env.TF_CPP_MIN_LOG_LEVEL ?? '0';
    return;
  }
  // 2: errors only (no INFO, no WARNING)
  process.env.TF_CPP_MIN_LOG_LEVEL = '2';
}

/**
 * Try the native TensorFlow backends in order: `@tensorflow/tfjs-node-gpu`, then
 * `@tensorflow/tfjs-node` (optional npm installs that only work where their binary download
 * works), then the binding `npm run setup:native` built against TensorFlow from PyPI
 * (native/node_modules). Loading one registers the "tensorflow" tfjs backend. Every skipped
 * candidate comes back with the reason, for `rass doctor` and the run tags.
 */
export function loadNativeTfjs(env: Record<string, string | undefined> = process.env): NativeLoad {
  quietTensorFlowLogs(env);
  const root = packageRoot();
  const reasons: Record<string, string> = {};
  const rootRequire = createRequire(join(root, 'package.json'));
  const candidates: (NativeCandidate & { load(): unknown })[] = [
    { id: 'tfjs-node-gpu', from: '@tensorflow/tfjs-node-gpu', load: () => rootRequire('@tensorflow/tfjs-node-gpu') },
    { id: 'tfjs-node', from: '@tensorflow/tfjs-node', load: () => rootRequire('@tensorflow/tfjs-node') },
    {
      id: 'setup-native',
      from: join(root, 'native', 'node_modules', '@tensorflow', 'tfjs-node'),
      load: () => {
        if (!existsSync(join(root, 'native', 'build-info.json'))) throw new Error('not built (run `npm run setup:native`)');
        return createRequire(join(root, 'native', 'package.json'))('@tensorflow/tfjs-node');
      },
    },
  ];
  for (const c of candidates) {
    try {
      const module = quietly(() => c.load());
      return { ok: true, candidate: { id: c.id, from: c.from }, module, skipped: reasons };
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0];
      reasons[c.id] = /Cannot find module/.test(msg) && c.id !== 'setup-native' ? 'not installed' : msg;
    }
  }
  return { ok: false, reasons };
}

/**
 * tfjs-node brings its own copy of the tfjs union package; loading it re-registers the cpu and
 * webgl kernels into the registry every copy shares, and tfjs warns once per kernel (~400
 * lines). Those warnings are expected here, so drop just them while loading.
 */
function quietly<T>(load: () => T): T {
  const warn = console.warn;
  const expected = /is already registered|already registered\. Reusing|Platform node has already been set/;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && expected.test(args[0])) return;
    warn(...args);
  };
  try {
    return load();
  } finally {
    console.warn = warn;
  }
}

/**
 * Whether TensorFlow's oneDNN custom ops are on in a process started with `env`:
 * TF_ENABLE_ONEDNN_OPTS when set, else TensorFlow's own default, which on x86 turns them on
 * only for CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX (read here from /proc/cpuinfo). It
 * matters: on such a CPU the tiny UNet LoRA step at a 64x64 latent takes half the time and a
 * third of the memory with oneDNN (README, memory section); `TF_ENABLE_ONEDNN_OPTS=1` asks
 * for it on other CPUs too.
 */
export function oneDnnState(env: Record<string, string | undefined> = process.env): { on: boolean | null; why: string } {
  const set = env.TF_ENABLE_ONEDNN_OPTS;
  if (set !== undefined && set !== '') {
    const on = ['1', 'true', 'yes'].includes(set.toLowerCase());
    return { on, why: `TF_ENABLE_ONEDNN_OPTS=${set}` };
  }
  if (process.arch !== 'x64') return { on: null, why: `TensorFlow's default on ${process.arch}` };
  try {
    const flags = new Set((readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/));
    const has = ['avx512_vnni', 'avx512_bf16', 'avx_vnni', 'amx_tile'].filter((f) => flags.has(f));
    return has.length ? { on: true, why: `TensorFlow's default on this CPU (${has.join(', ')})` } : { on: false, why: "TensorFlow's default on this CPU (no AVX-512 VNNI/BF16, AVX-VNNI or AMX); TF_ENABLE_ONEDNN_OPTS=1 turns it on" };
  } catch {
    return { on: null, why: "TensorFlow's default (CPU features unreadable)" };
  }
}

/** oneDnnState's answer as a word: what `rass doctor`, the run tag and BENCH lines print. */
export function oneDnnLabel(env: Record<string, string | undefined> = process.env): 'on' | 'off' | 'unknown' {
  const on = oneDnnState(env).on;
  return on === null ? 'unknown' : on ? 'on' : 'off';
}
