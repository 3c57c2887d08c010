import { availableParallelism, loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { oneDnnLabel } from '../framework/engine/native-binding.js';

/**
 * The headline line every benchmark ends with (ratio = our speed / peer's; above 1 we are
 * faster). `extra` appends `key=value` fields: the thread count both sides ran with and the
 * machine load, so a number measured on a busy shared machine says so.
 */
export function benchLine(id: string, value: number, unit: string, peerName: string, peerValue: number, ratio: number, extra: Record<string, string | number> = {}): string {
  const f = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : String(x));
  // on the native backend, whether oneDNN ran: it halves a UNet step's time (README)
  if ((tf.getBackend() === 'tensorflow' || extra.backend === 'tensorflow') && !('onednn' in extra)) extra = { ...extra, onednn: oneDnnLabel() };
  const tail = Object.entries(extra).map(([k, v]) => ` ${k}=${typeof v === 'number' ? f(v) : v}`).join('');
  return `BENCH ${id} ${f(value)} ${unit} peer=${peerName} ${f(peerValue)} ratio=${f(ratio)}${tail}`;
}

/**
 * The two headline lines of a training-step bench: `<id>` in steps/s (ratio = ours / peer's) and
 * `<id>-memory` as peak RSS in MB (ratio = peer's / ours: above 1 we use less). A missing peer
 * prints NaN figures.
 */
export function stepBenchLines(id: string, ours: { step_s: number; peak_rss_mb: number }, peer: { step_s: number; peak_rss_mb: number } | null, peerName: string, extra: Record<string, string | number>): string[] {
  const sps = 1 / ours.step_s;
  const psps = peer ? 1 / peer.step_s : NaN;
  return [
    benchLine(id, sps, 'steps/s', peerName, psps, sps / psps, extra),
    benchLine(`${id}-memory`, ours.peak_rss_mb, 'MB', peerName, peer?.peak_rss_mb ?? NaN, peer ? peer.peak_rss_mb / ours.peak_rss_mb : NaN, extra),
  ];
}

/** `--threads N` from a bench's arguments, else the cores this process may use: the count both sides are pinned to. */
export function benchThreads(args: readonly string[]): number {
  const i = args.indexOf('--threads');
  if (i < 0) return availableParallelism();
  const n = Number(args[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--threads: expected a positive integer, got "${args[i + 1]}"`);
  return n;
}

/**
 * The 1-minute load average, and a warning when other work competes for the cores: with
 * more runnable threads than cores, both sides' timings (and PyTorch's OpenMP spin-waits in
 * particular) measure the neighbours as much as the code.
 */
export function machineLoad(threads: number): { load: number; warning: string | null } {
  const load = loadavg()[0] as number;
  const cores = availableParallelism();
  const busy = load + threads > cores + 0.5;
  return {
    load,
    warning: busy ? `WARNING: load average ${load.toFixed(2)} on ${cores} cores while benchmarking with ${threads} thread(s): other processes compete, timings are not reliable` : null,
  };
}
