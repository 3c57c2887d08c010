/**
 * `npm run bench -- sweeps [--trials N]`: the sweep executor on tiny trials (default N = 16),
 * each figure the wall time of a whole `rass sweep` command (startup, planning, workers, report).
 * - launch rate: N near-trivial trials (the quickstart experiment with one step, cpu backend)
 *   run serially by `rass sweep`, vs the same number of trivial trials launched by Hydra's
 *   multirun (hydra-core, basic launcher) in the same run (BENCH sweeps.launch, trials/s);
 * - parallel throughput: N tiny trials (2000 quickstart steps, ~1 s each) with 2 workers vs 1
 *   (BENCH sweeps.parallel; target >= 1.8x on 2 cores). They run on the wasm backend: its
 *   kernels work in a preallocated heap, so two trials side by side run at full speed each;
 *   the cpu backend allocates a typed array per op and two such processes slow each other
 *   down by 10-25% on these VMs whatever runs them (measured with two plain processes).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../framework/paths.js';
import { benchLine } from './_format.js';

function timeSweep(root: string, trials: number, parallel: number, steps: number, backend: string): number {
  const runs = mkdtempSync(join(tmpdir(), 'rass-bench-sweeps-'));
  // `trials` values of a grid axis, one trial each
  const grid = `sweep.grid={experiment.hidden: [${Array.from({ length: trials }, (_, i) => 8 + i).join(', ')}]}`;
  const args = [join(root, 'dist/bin/rass.js'), 'sweep', join(root, 'configs/ablations/quickstart-lr-hidden.yaml'),
    '--set', `runs_dir=${runs}`, '--set', `backend=${backend}`, '--set', `experiment.steps=${steps}`, '--set', 'experiment.eval_every=1000', '--set', 'experiment.checkpoint_every=1000',
    '--set', 'sweep.repeats=~', '--set', grid, '--max-parallel', String(parallel)];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  const s = (performance.now() - t0) / 1000;
  rmSync(runs, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`rass sweep failed: ${r.stderr || r.stdout}`);
  return s;
}

export async function run(args: string[]): Promise<void> {
  const ti = args.indexOf('--trials');
  const trials = ti >= 0 ? Number(args[ti + 1]) : 16;
  const root = packageRoot();

  // Hydra multirun: trivial trials in its basic launcher
  const venv = execFileSync(join(root, 'scripts/py-venv.sh'), ['bench-sweeps', join(root, 'scripts/bench/sweeps/requirements.txt')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const hydraDir = mkdtempSync(join(tmpdir(), 'rass-bench-hydra-'));
  const values = Array.from({ length: trials }, (_, i) => i).join(',');
  const h0 = performance.now();
  const h = spawnSync(join(venv, 'bin/python'), [join(root, 'scripts/bench/sweeps/trivial_app.py'), '--multirun', `+x=${values}`, `hydra.sweep.dir=${hydraDir}/multirun`, `hydra.run.dir=${hydraDir}/run`], { cwd: hydraDir, encoding: 'utf8' });
  const hydraS = (performance.now() - h0) / 1000;
  rmSync(hydraDir, { recursive: true, force: true });
  if (h.status !== 0) throw new Error(`hydra multirun failed: ${h.stderr}`);

  const trivialSerial = timeSweep(root, trials, 1, 1, 'cpu');
  const tinySerial = timeSweep(root, trials, 1, 2000, 'wasm');
  const tinyParallel = timeSweep(root, trials, 2, 2000, 'wasm');

  const rows: [string, number][] = [
    [`hydra multirun, ${trials} trivial trials (one process)`, hydraS],
    [`rass sweep, ${trials} trivial trials, 1 worker`, trivialSerial],
    [`rass sweep, ${trials} tiny trials (2000 steps), 1 worker`, tinySerial],
    [`rass sweep, ${trials} tiny trials (2000 steps), 2 workers`, tinyParallel],
  ];
  console.log('case                                                    wall s   trials/s');
  for (const [name, s] of rows) console.log(`${name.padEnd(54)} ${s.toFixed(2).padStart(7)}   ${(trials / s).toFixed(2).padStart(8)}`);
  console.log(`per-trial launch overhead (trivial trials, 1 worker): ${((trivialSerial / trials) * 1000).toFixed(0)} ms (trials run in reused worker processes; a crash fails only its trial)`);
  console.log(benchLine('sweeps.parallel', trials / tinyParallel, 'trials/s', 'rass-serial', trials / tinySerial, tinySerial / tinyParallel));
  console.log(benchLine('sweeps.launch', trials / trivialSerial, 'trials/s', 'hydra-multirun', trials / hydraS, hydraS / trivialSerial));
}
