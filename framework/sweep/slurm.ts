/**
 * The Slurm executor: a sweep's pending trials become one sbatch job array (resources from
 * the sweep's `executor:` block); each array task runs one trial with `rass run` on a compute
 * node, writing to the shared run store. States are followed with squeue (and sacct when
 * accounting is enabled); results are read back from the trials' journals.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { packageRoot } from '../paths.js';

export interface SlurmOptions {
  partition?: string;
  gpus?: number;
  cpus?: number;
  mem?: string;
  time?: string;
  account?: string;
  /** extra `#SBATCH ...` lines, e.g. ["--qos=high", "--constraint=a100"] */
  extra?: string[];
  poll_s?: number;
}

/** Options of the Slurm executor (besides `type`), as JSON Schema properties. */
export const slurmExecutorProperties = {
  partition: { type: 'string' },
  gpus: { type: 'integer', minimum: 0 },
  cpus: { type: 'integer', minimum: 1 },
  mem: { type: 'string', pattern: '^[0-9]+[KMGT]?$' },
  time: { type: 'string' },
  account: { type: 'string' },
  extra: { type: 'array', items: { type: 'string' } },
  poll_s: { type: 'number', exclusiveMinimum: 0 },
} as const;

export function sbatchScript(o: SlurmOptions, p: { name: string; count: number; maxParallel: number; manifest: string; logDir: string }): string {
  const lines = [
    '#!/bin/bash',
    `#SBATCH --job-name=rass-${p.name}`,
    `#SBATCH --array=0-${p.count - 1}%${p.maxParallel}`,
    `#SBATCH --output=${join(p.logDir, 'slurm-%A_%a.log')}`,
    '#SBATCH --ntasks=1',
  ];
  if (o.partition) lines.push(`#SBATCH --partition=${o.partition}`);
  if (o.gpus !== undefined && o.gpus > 0) lines.push(`#SBATCH --gpus=${o.gpus}`);
  if (o.cpus !== undefined) lines.push(`#SBATCH --cpus-per-task=${o.cpus}`);
  if (o.mem) lines.push(`#SBATCH --mem=${o.mem}`);
  if (o.time) lines.push(`#SBATCH --time=${o.time}`);
  if (o.account) lines.push(`#SBATCH --account=${o.account}`);
  for (const e of o.extra ?? []) lines.push(`#SBATCH ${e.startsWith('--') ? e : `--${e}`}`);
  lines.push('', `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(packageRoot(), 'dist', 'framework', 'sweep', 'slurm-task.js'))} ${JSON.stringify(p.manifest)}`, '');
  return lines.join('\n');
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; code?: string; message: string };
    if (err.code === 'ENOENT') throw new UserError(`${cmd} not found: the Slurm executor needs the Slurm client tools (sbatch, squeue) on PATH`);
    throw new UserError(`${cmd} ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim()}`);
  }
}

/** Submit the array; returns the job id. */
export function submitArray(dir: string, o: SlurmOptions, name: string, trials: { id: string; command: string; args: string[] }[], maxParallel: number, logDir: string): { jobId: string; script: string } {
  mkdirSync(dir, { recursive: true });
  const manifest = join(dir, 'trials.json');
  writeFileSync(manifest, JSON.stringify(trials, null, 2) + '\n');
  const script = join(dir, 'array.sbatch');
  writeFileSync(script, sbatchScript(o, { name, count: trials.length, maxParallel, manifest, logDir }));
  const jobId = sh('sbatch', ['--parsable', script]).trim().split(';')[0];
  if (!/^\d+$/.test(jobId)) throw new UserError(`sbatch returned "${jobId}", not a job id`);
  return { jobId, script };
}

/** Array tasks of the job still known to squeue (pending or running). */
export function activeTasks(jobId: string): { task: string; state: string }[] {
  const out = sh('squeue', ['-h', '-r', '-j', jobId, '-o', '%i %T']);
  return out.split('\n').filter(Boolean).map((l) => {
    const [task, state] = l.trim().split(/\s+/);
    return { task, state };
  });
}

/** Final states from sacct when accounting is enabled (else an empty map). */
export function accountedStates(jobId: string): Map<string, string> {
  try {
    const out = execFileSync('sacct', ['-n', '-P', '-X', '-j', jobId, '-o', 'JobID,State'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return new Map(out.split('\n').filter(Boolean).map((l) => l.split('|') as [string, string]));
  } catch {
    return new Map();
  }
}

export function cancel(jobId: string): void {
  try {
    execFileSync('scancel', [jobId], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
}
