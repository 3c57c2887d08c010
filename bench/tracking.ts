/**
 * `npm run bench -- tracking`: the MLflow tracker against a real local MLflow server, with
 * the Python mlflow client (MlflowClient.log_batch) against the same server as the peer.
 *
 * - tracking.step-overhead: a training loop of 100 ms steps (busy CPU on the main thread, as
 *   a tfjs step is) logging 100 metrics per step: journal append + onAppend, with the
 *   tracker shipping in the background (on its worker thread, as the runner's factory
 *   makes it; the same tracker on the loop's own thread is shown for comparison). Overhead = main-thread time
 *   outside the steps' compute / compute time (the shipping's work between steps counts;
 *   the final flush after the loop is reported apart). The peer logs each step with one
 *   synchronous log_batch, timed the same way. ratio = peer overhead / ours (>1: ours
 *   costs less).
 * - tracking.points-per-s: metric points per second from a journal into MLflow (ship of a
 *   finished offline run, 1000-point log-batch calls) vs log_batch with 1000 per call.
 *
 * Args: --steps N (default 100), --points N (default 50000).
 *
 * The overhead figures are wall-clock on the machine as it is: on a busy machine the OS
 * deschedules the loop's thread between steps too, which counts (see the no-logging loop and
 * local-journal-only rows for that floor).
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MlflowClient } from '../framework/tracking/mlflow/client.js';
import { RunShipper } from '../framework/tracking/mlflow/shipper.js';
import { MlflowTracker } from '../framework/tracking/mlflow/tracker.js';
import { mlflowTrackerFactory } from '../framework/tracking/mlflow/factory.js';
import type { RunTracker } from '../framework/tracking/tracker.js';
import { packageRoot } from '../framework/paths.js';
import { mlflowVenv, startMlflowServer } from '../scripts/mlflow/server.js';
import { formatTable } from '../framework/output/table.js';
import { benchLine } from './_format.js';

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

/** A journal writer like the run store's (JSON lines, contiguous seq), without fsync. */
function makeRun(root: string, id: string) {
  const dir = join(root, 'bench', id);
  mkdirSync(dir, { recursive: true });
  let seq = 0;
  const file = join(dir, 'journal.jsonl');
  const append = (ev: Record<string, unknown>) => appendFileSync(file, JSON.stringify({ ...ev, seq: seq++, t: Date.now() }) + '\n');
  append({ type: 'run', runId: id, experiment: 'bench', name: id });
  return { dir, append };
}

/** The training step's compute; returns the wall time it took. */
function spin(ms: number): number {
  const start = performance.now();
  const end = start + ms;
  while (performance.now() < end) {
    /* busy */
  }
  return performance.now() - start;
}

const STEP_MS = 100;
const METRICS_PER_STEP = 100;

export async function run(args: string[]): Promise<void> {
  const steps = arg(args, '--steps', 100);
  const points = arg(args, '--points', 50_000);
  const venv = mlflowVenv();
  const server = await startMlflowServer();
  const root = mkdtempSync(join(tmpdir(), 'rass-bench-tracking-'));
  const client = new MlflowClient({ uri: server.uri });
  const rows: unknown[][] = [];
  try {
    const peer = (mode: string, n: number) =>
      JSON.parse(
        // mlflow prints its own lines (run links) to stdout too: take the JSON one.
        execFileSync(join(venv, 'bin', 'python'), [join(packageRoot(), 'scripts/mlflow/bench_peer.py'), server.uri, mode, String(n)], { encoding: 'utf8', env: { ...process.env, MLFLOW_TRACKING_URI: '' } })
          .split('\n')
          .find((l) => l.startsWith('{')) ?? '{}',
      ) as Record<string, number>;

    // Warm the server (first requests pay imports and DB setup).
    const warm = makeRun(root, 'warm');
    warm.append({ type: 'metrics', step: 0, values: { x: 1 } });
    await new RunShipper({ client, dir: warm.dir }).ship();

    // --- per-step overhead
    // Overhead = main-thread time outside the steps' compute (logging calls plus whatever the
    // background shipping runs between steps), so machine load during a step does not count.
    const noLogMs = await (async () => {
      let inSteps = 0;
      const t0 = performance.now();
      for (let s = 0; s < steps; s++) {
        inSteps += spin(STEP_MS);
        await new Promise((res) => setImmediate(res));
      }
      return performance.now() - t0 - inSteps;
    })();
    const base = (noLogMs / (steps * STEP_MS)) * 100;
    const loop = async (id: string, make: (dir: string) => Promise<RunTracker | undefined>) => {
      const r = makeRun(root, id);
      const tracker = (await make(r.dir)) ?? { name: 'none', onAppend: () => undefined, flush: async () => undefined, close: async () => undefined };
      let inSteps = 0;
      const gaps: number[] = [];
      const t0 = performance.now();
      for (let s = 0; s < steps; s++) {
        inSteps += spin(STEP_MS);
        const g0 = performance.now();
        const values: Record<string, number> = {};
        for (let i = 0; i < METRICS_PER_STEP; i++) values[`m${i}`] = s * METRICS_PER_STEP + i;
        r.append({ type: 'metrics', step: s, values });
        tracker.onAppend();
        // Let pending I/O callbacks run between steps, as an async training loop does.
        await new Promise((res) => setImmediate(res));
        gaps.push(performance.now() - g0);
      }
      const loopMs = performance.now() - t0;
      const c0 = performance.now();
      await tracker.close({ timeoutMs: 60_000 });
      gaps.sort((a, b) => a - b);
      const q = (f: number) => gaps[Math.min(gaps.length - 1, Math.floor(f * gaps.length))].toFixed(2);
      return { pct: ((loopMs - inSteps) / inSteps) * 100, closeMs: performance.now() - c0, dist: `per step median ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${q(1)} ms` };
    };
    // What the runner gets (the factory): shipping on a worker thread.
    const threaded = await loop('steps-threaded', async (dir) => (await mlflowTrackerFactory({ dir, runId: 'steps-threaded', experiment: 'bench', config: { tracking: { mlflow: { uri: server.uri } } }, env: {} }))!);
    // The same tracker on the training loop's own thread, for comparison.
    const inline = await loop('steps-inline', async (dir) => new MlflowTracker({ client, dir, log: () => undefined }));
    // The local store alone (journal append, no MLflow): what any logging costs.
    const appendOnly = await loop('steps-local', async () => undefined);
    const ours = threaded.pct;
    const py = peer('steps', steps);
    rows.push(['step overhead, tracker thread (runner default)', `${ours.toFixed(3)} %`, `${py.overhead_pct.toFixed(3)} %`, `${threaded.dist}; no-logging loop ${base.toFixed(3)} %; final flush ${threaded.closeMs.toFixed(0)} ms`]);
    rows.push(['step overhead, tracker on the loop thread', `${inline.pct.toFixed(3)} %`, '', `${inline.dist}; final flush ${inline.closeMs.toFixed(0)} ms`]);
    rows.push(['step overhead, local journal only (no MLflow)', `${appendOnly.pct.toFixed(3)} %`, '', appendOnly.dist]);

    // --- sustained points per second
    const p = makeRun(root, 'points');
    for (let s = 0; s < points / METRICS_PER_STEP; s++) {
      const values: Record<string, number> = {};
      for (let i = 0; i < METRICS_PER_STEP; i++) values[`m${i}`] = s * METRICS_PER_STEP + i;
      p.append({ type: 'metrics', step: s, values });
    }
    const shipper = new RunShipper({ client, dir: p.dir });
    const s0 = performance.now();
    const progress = await shipper.ship();
    const shipS = (performance.now() - s0) / 1000;
    if (progress.ackedSeq !== progress.journalSeq) throw new Error('bench: not everything was acknowledged');
    const oursPps = points / shipS;
    const pyPts = peer('points', points);
    rows.push(['metric points / s into MLflow', oursPps.toFixed(0), pyPts.points_per_s.toFixed(0), `${points} points, 1000 per log-batch`]);

    console.log(formatTable(['measure', 'rass (TS)', 'python mlflow', 'notes'], rows));
    console.log(benchLine('tracking.points-per-s', oursPps, 'points/s', 'python-mlflow-log_batch', pyPts.points_per_s, oursPps / pyPts.points_per_s));
    console.log(benchLine('tracking.step-overhead', ours, '%', 'python-mlflow-log_batch', py.overhead_pct, py.overhead_pct / Math.max(ours, 1e-3)));
  } finally {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
