import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../../errors.js';
import type { CommandSpec } from '../../plugins/command-spec.js';
import { BACKEND_NAMES, initBackend, nativeBackendStatus, type BackendName } from '../../engine/backend.js';
import { packageRoot } from '../../paths.js';
import { probeCompiledSteps } from '../../engine/compile.js';
import { oneDnnLabel, oneDnnState } from '../../engine/native-binding.js';
import { nativeOpsStatus } from '../../engine/native-ops.js';

export interface BackendReport {
  name: BackendName;
  available: boolean;
  /** Where it came from, or why it is not available. */
  detail: string;
  threads?: number;
  /** Square float32 matmul, measured for about `seconds`. */
  matmulGflops?: number;
}

export interface DoctorReport {
  node: string;
  tfjs: string;
  tensorflow: string | null;
  /** `auto` would pick this one. */
  chosen: BackendName | null;
  backends: BackendReport[];
  gpus: string[];
  gpuNote: string;
  matmulSize: number;
  /** Whether training steps compile into one TensorFlow function (native backend with the binding patch). */
  compiledSteps: { available: boolean; detail: string };
  /** compiled steps through XLA (`compile: xla`) */
  xla: { available: boolean; detail: string };
  /** rass's own TensorFlow kernels (native/ops: fused attention), loaded with the native backend */
  nativeOps: { available: boolean; detail: string };
}

const MATMUL = 512;

function matmulGflops(seconds: number): number {
  const a = tf.randomNormal([MATMUL, MATMUL]) as tf.Tensor2D;
  // (blocks return nothing: tf.tidy walks returned values, and a typed array makes that slow)
  tf.tidy(() => void tf.matMul(a, a).dataSync());
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    tf.tidy(() => void tf.matMul(a, a).dataSync());
    n++;
  }
  const gf = (2 * MATMUL ** 3 * n) / ((performance.now() - t0) / 1000) / 1e9;
  a.dispose();
  return gf;
}

/** TensorFlow's C library version, from the native binding once it is loaded. */
function tensorflowVersion(): string | null {
  const be = tf.findBackend('tensorflow') as unknown as { binding?: { TF_Version?: string } } | null;
  return be?.binding?.TF_Version ?? null;
}

/** GPUs: what the driver lists, and what the setup:native TensorFlow sees (when it is a CUDA build). */
function gpus(root: string): { gpus: string[]; note: string } {
  let list: string[] = [];
  let note: string;
  try {
    list = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').filter(Boolean);
    note = 'from nvidia-smi';
  } catch {
    note = 'no nvidia-smi, or it failed';
  }
  const info = join(root, 'native', 'build-info.json');
  if (existsSync(info)) {
    const b = JSON.parse(readFileSync(info, 'utf8')) as { cuda?: boolean; venv?: string };
    note += b.cuda ? '; setup:native is the CUDA build' : '; setup:native is the CPU build (`npm run setup:native -- --cuda` for CUDA 12)';
  }
  return { gpus: list, note };
}

export async function collectDoctorReport(opts: { seconds?: number; env?: Record<string, string | undefined>; threads?: number } = {}): Promise<DoctorReport> {
  const seconds = opts.seconds ?? 1;
  const env = opts.env ?? process.env;
  const before = tf.getBackend();
  let chosen: BackendName | null;
  try {
    chosen = (await initBackend({ prefer: 'auto', env: { ...env, RASS_BACKEND: undefined }, log: null, threads: opts.threads })).name;
  } catch {
    chosen = null;
  }
  const backends: BackendReport[] = [];
  let compiledSteps = { available: false, detail: 'needs the native TensorFlow backend' };
  let xla = { available: false, detail: 'needs compiled steps' };
  for (const name of BACKEND_NAMES) {
    if (name === 'tensorflow') {
      const s = nativeBackendStatus(env, opts.threads);
      if (!s.ok) {
        backends.push({ name, available: false, detail: s.why });
        continue;
      }
    }
    try {
      const c = await initBackend({ prefer: name, env, log: null, threads: opts.threads });
      const detail =
        name === 'wasm'
          ? `${c.via} (SIMD ${(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) ? 'on' : 'off'}; single-threaded in Node: tfjs disables its threaded build there)`
          : c.via;
      backends.push({ name, available: true, detail, threads: c.threads, matmulGflops: matmulGflops(seconds) });
      if (name === 'tensorflow') {
        const p = probeCompiledSteps();
        compiledSteps = { available: p.ok, detail: p.detail };
        if (p.ok) {
          const px = probeCompiledSteps('xla');
          xla = { available: px.ok, detail: px.detail };
        }
      }
    } catch (e) {
      backends.push({ name, available: false, detail: (e as Error).message });
    }
  }
  if (before && tf.findBackend(before)) await tf.setBackend(before);
  const g = gpus(packageRoot());
  return { node: process.version, tfjs: tf.version_core, tensorflow: tensorflowVersion(), chosen, backends, gpus: g.gpus, gpuNote: g.note, matmulSize: MATMUL, compiledSteps, xla, nativeOps: nativeOpsStatus() };
}

export function formatDoctorReport(r: DoctorReport): string {
  const lines = [
    `Node        ${r.node}`,
    `tfjs        ${r.tfjs}`,
    `TensorFlow  ${r.tensorflow ?? 'not loaded (no native backend)'}`,
    `auto picks  ${r.chosen ?? '(nothing starts)'}`,
    '',
    `backend     status       threads  matmul ${r.matmulSize}x${r.matmulSize} GFLOP/s  detail`,
  ];
  for (const b of r.backends) {
    lines.push(
      `${b.name.padEnd(11)} ${(b.available ? 'available' : 'unavailable').padEnd(12)} ${String(b.threads ?? '-').padStart(7)}  ${(b.matmulGflops === undefined ? '-' : b.matmulGflops.toFixed(1)).padStart(21)}  ${b.detail}`,
    );
  }
  const native = r.backends.find((b) => b.name === 'tensorflow' && b.available);
  lines.push('', `compiled    ${r.compiledSteps.available ? 'available' : 'unavailable'}: ${r.compiledSteps.detail} (training loops: config \`compile: auto | off | xla\`)`);
  lines.push(`XLA         ${r.xla.available ? 'available' : 'unavailable'}: ${r.xla.detail} (config \`compile: xla\`)`);
  lines.push(`kernels     ${r.nativeOps.available ? 'available' : 'unavailable'}: ${r.nativeOps.detail} (RASS_NATIVE_OPS=0 turns them off)`);
  lines.push(`GPU devices ${r.gpus.length ? r.gpus.join('; ') : 'none'} (${r.gpuNote})`, `cores       ${availableParallelism()}`);
  lines.push(`oneDNN      ${oneDnnLabel()} (${oneDnnState().why})`);
  lines.push(`threads     ${native ? `native TensorFlow ${native.threads} intra-op / ${native.threads} inter-op` : 'native TensorFlow not loaded'} (--threads, config \`threads\`, RASS_THREADS; default: the cores this process may use)`);
  return lines.join('\n') + '\n';
}

export const doctorCommand: CommandSpec = {
  name: 'doctor',
  summary: 'report Node/tfjs/TensorFlow versions, each compute backend (or why not), threads, GPUs and a matmul GFLOP/s per backend',
  configure(cmd, ctx) {
    cmd
      .option('--seconds <s>', 'matmul timing per backend', '1')
      .option('--json', 'print JSON')
      .option('--threads <n>', 'native TensorFlow intra-/inter-op threads to start with (default: the cores this process may use)')
      .action(async (opts: { seconds: string; json?: boolean; threads?: string }) => {
        const threads = opts.threads === undefined ? undefined : Number(opts.threads);
        if (threads !== undefined && !(Number.isInteger(threads) && threads > 0)) throw new UserError(`--threads "${opts.threads}": expected a positive integer`);
        const r = await collectDoctorReport({ seconds: Number(opts.seconds), threads });
        ctx.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : formatDoctorReport(r));
      });
  },
};
