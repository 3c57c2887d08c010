/**
 * The body of one Slurm array task: runs trial number SLURM_ARRAY_TASK_ID of a sweep's
 * manifest (a JSON list of `{id, command, args}`: the sweep CLI's `rass run` command lines) and exits with its exit code.
 * Usage (written into the sbatch script): node slurm-task.js MANIFEST
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const [manifest] = process.argv.slice(2);
const index = Number(process.env.SLURM_ARRAY_TASK_ID);
const trials = JSON.parse(readFileSync(manifest, 'utf8')) as { id: string; command?: string; args: string[] }[];
const trial = trials[index];
if (!trial) {
  console.error(`slurm-task: no trial ${index} in ${manifest} (${trials.length} trials)`);
  process.exit(2);
}
console.log(`slurm-task: trial ${trial.id} (array index ${index}) on ${process.env.SLURMD_NODENAME ?? '?'}`);
// the command the sweep's CLI was started with (node), else this task's node
const r = spawnSync(trial.command ?? process.execPath, trial.args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
