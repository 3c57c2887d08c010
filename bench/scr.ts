/**
 * `npm run bench -- scr [--iters N] [--threads T] [--prior DIR]`: one SCR training step (VAE
 * encode, UNet + LoRA with attention capture, decode, restoration + SCL loss, backward, AdamW)
 * on the tiny prior at 64x64, batch 2: this project (the real experiment/scr step, native
 * backend when built) vs the same step in diffusers + peft on torch CPU, same thread count,
 * each in its own process (peak RSS is the step's). Headline: scr.train-step (steps/s).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { stepBenchLines } from './_format.js';

interface Result {
  step_s: number;
  peak_rss_mb: number;
  threads: number | null;
  backend?: string;
  torch?: string;
}

function arg(args: string[], name: string, dflt: string): string {
  const i = args.indexOf(name);
  return i >= 0 ? (args[i + 1] ?? dflt) : dflt;
}

export async function run(args: string[]): Promise<void> {
  const root = process.cwd();
  const iters = arg(args, '--iters', '5');
  const threads = Number(arg(args, '--threads', String(Math.min(2, cpus().length))));
  const fallback = join(root, 'tests/fixtures/backbones/tiny-sd');
  const prior = arg(args, '--prior', existsSync(join(root, 'models/tiny-shapes/unet')) ? join(root, 'models/tiny-shapes') : fallback);
  const [batch, size] = ['2', '64'];
  console.log(`SCR step: ${prior}, batch ${batch}, ${size}x${size}, ${threads} thread(s) each; load average ${loadavg()[0].toFixed(2)} on ${cpus().length} cores`);
  if (loadavg()[0] > cpus().length * 0.5) console.log(`warning: the machine is busy (load ${loadavg()[0].toFixed(2)}); ratios measured now are unreliable`);
  const env = { ...process.env, RASS_THREADS: String(threads), OMP_NUM_THREADS: String(threads), TF_CPP_MIN_LOG_LEVEL: '2' };
  const oursWith = (compile: 'auto' | 'off' | 'xla') =>
    JSON.parse(execFileSync(process.execPath, [join(root, 'dist/bench/_scr-step.js'), prior, batch, size, iters, compile], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop() as string) as Result & { compile?: string };
  // the headline is the step as experiment/scr runs it (compile: auto); the eager step beside it
  const ours = oursWith('auto');
  const eager = oursWith('off');
  // and through XLA (compile: xla), where the native backend compiles
  const xla = ours.compile === 'compiled' ? oursWith('xla') : null;
  let peer: Result | null = null;
  try {
    const venv = execFileSync(join(root, 'scripts/py-venv.sh'), ['backbones', join(root, 'scripts/fixtures/backbones/requirements.txt')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    peer = JSON.parse(execFileSync(join(venv, 'bin/python'), [join(root, 'scripts/bench/scr_peer.py'), prior, batch, size, iters, String(threads)], { env, encoding: 'utf8' }).trim().split('\n').pop() as string) as Result;
  } catch (e) {
    console.log(`peer (diffusers + peft on torch CPU) unavailable: ${(e as Error).message.split('\n')[0]}`);
  }
  console.log('| SCR step | ours | diffusers + peft |');
  console.log('|---|---|---|');
  console.log(`| time | ${(ours.step_s * 1000).toFixed(0)} ms (${ours.backend}, ${ours.threads ?? '?'} threads) | ${peer ? `${(peer.step_s * 1000).toFixed(0)} ms (torch ${peer.torch}, ${peer.threads} threads)` : 'n/a'} |`);
  console.log(`| peak RSS | ${ours.peak_rss_mb.toFixed(0)} MB | ${peer ? `${peer.peak_rss_mb.toFixed(0)} MB` : 'n/a'} |`);
  console.log(`| (ours as run: ${ours.compile ?? 'eager'}; eager step ${(eager.step_s * 1000).toFixed(0)} ms, ${eager.peak_rss_mb.toFixed(0)} MB${xla ? `; compile: xla ${(xla.step_s * 1000).toFixed(0)} ms, ${xla.peak_rss_mb.toFixed(0)} MB` : ''}) | | |`);
  const extra = { threads, backend: ours.backend ?? '?', compile: ours.compile ?? 'eager', eager_ms: (eager.step_s * 1000).toFixed(0), load: loadavg()[0].toFixed(2) };
  for (const line of stepBenchLines('scr.train-step', ours, peer, 'diffusers-peft-torch-cpu', extra)) console.log(line);
  if (xla) for (const line of stepBenchLines('scr.train-step-xla', xla, peer, 'diffusers-peft-torch-cpu', { ...extra, compile: `xla:${xla.compile ?? '?'}` })) console.log(line);
}
