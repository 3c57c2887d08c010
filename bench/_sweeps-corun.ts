/**
 * part of `npm run bench -- sweeps`: the same tiny trial the sweep bench runs, K times in one
 * process (in-process `runExperiment`, no sweep machinery), printing the median wall time of
 * the warm trials (all but the first) as JSON. The bench runs it alone and two copies side by
 * side: the slowdown of two independent processes is the hardware's own bound on what any
 * 2-worker executor can reach on this machine.
 *   node dist/bench/_sweeps-corun.js K [STEPS]   (STEPS: the trial's training steps, default 2000)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { PluginRegistry } from '../framework/plugins/registry.js';
import { packageRoot } from '../framework/paths.js';
import { runExperiment } from '../framework/runner/runner.js';
import { experimentsPackage } from '../experiments/index.js';

/** The tiny trial of the sweep bench, as `--set` overrides of the quickstart config. */
export const TINY_TRIAL_SETS = trialSets(2000);

/** The same trial with `steps` training steps (evaluation and checkpoints twice per trial). */
export function trialSets(steps: number): string[] {
  const half = Math.max(1, Math.round(steps / 2));
  return ['backend=wasm', `experiment.steps=${steps}`, `experiment.eval_every=${half}`, `experiment.checkpoint_every=${half}`];
}

async function main(): Promise<void> {
  const k = Number(process.argv[2] ?? 6);
  const steps = process.argv[3];
  const root = packageRoot();
  const runs = mkdtempSync(join(tmpdir(), 'rass-bench-corun-'));
  const ms: number[] = [];
  try {
    for (let i = 0; i < k; i++) {
      const registry = new PluginRegistry();
      registry.loadPackage(experimentsPackage);
      const sink = new PassThrough();
      sink.resume();
      const t0 = performance.now();
      const r = await runExperiment({ registry, configFile: join(root, 'configs/toy/classifier.yaml'), sets: [`runs_dir=${runs}`, ...(steps ? trialSets(Number(steps)) : TINY_TRIAL_SETS), `experiment.hidden=${8 + i}`], cwd: root, env: process.env, stdout: sink, stderr: sink });
      if (r.status !== 'FINISHED') throw new Error(`trial ${i}: ${r.status}`);
      ms.push(performance.now() - t0);
    }
  } finally {
    rmSync(runs, { recursive: true, force: true });
  }
  const warm = ms.slice(1).sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ warmMedianMs: warm[Math.floor(warm.length / 2)], ms }) + '\n');
}

if (process.argv[1]?.endsWith('_sweeps-corun.js')) await main();
