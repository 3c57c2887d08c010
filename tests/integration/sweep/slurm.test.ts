import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJournal } from '../../../framework/tracking/journal.js';

// A real single-node Slurm (Debian's slurm-wlm + munge, configured and started on localhost by
// scripts/slurm/setup.sh) runs a 2-trial sweep through the Slurm executor.
const bin = join(process.cwd(), 'dist', 'bin', 'rass.js');

function slurmReady(): boolean {
  try {
    execFileSync('bash', [join(process.cwd(), 'scripts/slurm/setup.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    return true;
  } catch (e) {
    if (process.env.RASS_SKIP_SLURM === '1') return false;
    const err = e as { stderr?: string; message: string };
    throw new Error(`SLURM UNAVAILABLE: scripts/slurm/setup.sh failed (${(err.stderr || err.message).trim().split('\n').slice(-2).join(' | ')}); set RASS_SKIP_SLURM=1 to skip this test`, { cause: e });
  }
}

it('a sweep runs as a Slurm job array: resources in the sbatch script, every trial finished, results from the shared run store', async (t) => {
  if (!slurmReady()) {
    console.log('SLURM TEST SKIPPED (RASS_SKIP_SLURM=1)');
    t.skip('RASS_SKIP_SLURM=1');
    return;
  }
  const runs = mkdtempSync(join(tmpdir(), 'sweep-slurm-'));
  const r = await new Promise<{ code: number | null; out: string; err: string }>((done) => {
    const c = spawn(process.execPath, [bin, 'sweep', 'tests/fixtures/sweep/slurm.yaml', '--set', `runs_dir=${runs}`], { env: { ...process.env, CI: 'true' } });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('exit', (code) => done({ code, out, err }));
  });
  assert.equal(r.code, 0, r.err + r.out);
  assert.match(r.out, /submitted Slurm job array \d+ \(2 tasks/);
  const parentId = readdirSync(join(runs, 'slurm-smoke'))[0];
  const parentDir = join(runs, 'slurm-smoke', parentId);
  const script = readFileSync(join(parentDir, 'slurm', 'array.sbatch'), 'utf8');
  for (const line of ['#SBATCH --array=0-1%', '#SBATCH --partition=debug', '#SBATCH --cpus-per-task=1', '#SBATCH --mem=1024M', '#SBATCH --time=00:10:00', '#SBATCH --comment=rass-test']) {
    assert.ok(script.includes(line), `sbatch script has ${line}`);
  }
  const trialDirs = readdirSync(join(runs, 'toy-classifier')).map((d) => join(runs, 'toy-classifier', d));
  assert.equal(trialDirs.length, 2);
  for (const d of trialDirs) {
    const ev = readJournal(join(d, 'journal.jsonl')).events;
    const runEv = ev.find((e) => e.type === 'run');
    assert.ok(runEv && runEv.type === 'run' && runEv.parentRunId === parentId);
    assert.equal(ev.filter((e) => e.type === 'status').at(-1)?.type === 'status' ? (ev.filter((e) => e.type === 'status').at(-1) as { status: string }).status : '', 'FINISHED');
  }
  const logs = readdirSync(join(parentDir, 'artifacts', 'logs')).filter((f) => /^slurm-\d+_[01]\.log$/.test(f));
  assert.equal(logs.length, 2, 'one Slurm log per array task');
  assert.ok(existsSync(join(parentDir, 'artifacts', 'report.html')));
});
