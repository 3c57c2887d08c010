/**
 * `npm run bench -- scr [--iters N] [--threads T] [--prior DIR]`: one SCR training step (VAE
 * encode, UNet + LoRA with attention capture, decode, restoration + SCL loss, backward, AdamW)
 * on the tiny prior at 64x64, batch 2: this project (the real experiment/scr step, native
 * backend when built) vs the same step in diffusers + peft on torch CPU, same thread count,
 * each in its own process (peak RSS is the step's), taking steps in turn (bench/_lockstep.ts).
 * Headline: scr.train-step (steps/s).
 */
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { stepBenchLines } from './_format.js';
import { alternate, LockstepPeer, startPythonPeer } from './_lockstep.js';

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
  const iters = arg(args, '--iters', '10');
  const threads = Number(arg(args, '--threads', String(Math.min(2, cpus().length))));
  const fallback = join(root, 'tests/fixtures/backbones/tiny-sd');
  const prior = arg(args, '--prior', existsSync(join(root, 'models/tiny-shapes/unet')) ? join(root, 'models/tiny-shapes') : fallback);
  const [batch, size] = ['2', '64'];
  console.log(`SCR step: ${prior}, batch ${batch}, ${size}x${size}, ${threads} thread(s) each; load average ${loadavg()[0].toFixed(2)} on ${cpus().length} cores`);
  if (loadavg()[0] > cpus().length * 0.5) console.log(`warning: the machine is busy (load ${loadavg()[0].toFixed(2)}); ratios measured now are unreliable`);
  const env = { ...process.env, RASS_THREADS: String(threads), OMP_NUM_THREADS: String(threads), TF_CPP_MIN_LOG_LEVEL: '2' };
  // every variant of ours in its own served process (its own peak RSS), taking steps in turn
  // with the peer's (bench/_lockstep.ts)
  const started: LockstepPeer[] = [];
  try {
    const p = await startPythonPeer('diffusers + peft on torch CPU', {
      venv: 'backbones',
      requirements: join(root, 'scripts/fixtures/backbones/requirements.txt'),
      script: join(root, 'scripts/bench/scr_peer.py'),
      args: [prior, batch, size, String(threads)],
      env,
    });
    if (p) started.push(p.peer);
    const peer = p?.peer ?? null;
    const peerInfo = p?.info ?? {};
    const oursWith = async (compile: 'auto' | 'off' | 'xla') => {
      const s = await LockstepPeer.start(process.execPath, [join(root, 'dist/bench/_scr-step.js'), prior, batch, size, iters, compile], env);
      started.push(s.peer);
      const warm = s.info.warm as number;
      const t = await alternate(warm + Number(iters), warm, () => s.peer.step(), peer);
      const stats = await s.peer.stats();
      await s.peer.close();
      const ours: Result & { compile?: string } = { step_s: t.ours, peak_rss_mb: stats.peak_rss_mb, threads: (s.info.threads as number | null) ?? null, backend: s.info.backend as string, compile: String(stats.compile) };
      return { ours, peerS: t.peer };
    };
    // the headline is the step as experiment/scr runs it (compile: auto); the eager step beside it
    const auto = await oursWith('auto');
    const ours = auto.ours;
    const eager = (await oursWith('off')).ours;
    // and through XLA (compile: xla), where the native backend compiles
    const xlaRun = ours.compile === 'compiled' ? await oursWith('xla') : null;
    const xla = xlaRun?.ours ?? null;
    const peerRes = (peerS: number | null): Result | null => (peer && peerS !== null ? { step_s: peerS, peak_rss_mb: NaN, threads: (peerInfo.threads as number | null) ?? null, torch: peerInfo.torch as string } : null);
    const peerStats = peer ? await peer.stats() : null;
    const peerMain = peerRes(auto.peerS);
    if (peerMain && peerStats) peerMain.peak_rss_mb = peerStats.peak_rss_mb;
    console.log('| SCR step | ours | diffusers + peft |');
    console.log('|---|---|---|');
    console.log(`| time (steps taken in turn) | ${(ours.step_s * 1000).toFixed(0)} ms (${ours.backend}, ${ours.threads ?? '?'} threads) | ${peerMain ? `${(peerMain.step_s * 1000).toFixed(0)} ms (torch ${peerMain.torch}, ${peerMain.threads} threads)` : 'n/a'} |`);
    console.log(`| peak RSS | ${ours.peak_rss_mb.toFixed(0)} MB | ${peerMain ? `${peerMain.peak_rss_mb.toFixed(0)} MB` : 'n/a'} |`);
    console.log(`| (ours as run: ${ours.compile ?? 'eager'}; eager step ${(eager.step_s * 1000).toFixed(0)} ms, ${eager.peak_rss_mb.toFixed(0)} MB${xla ? `; compile: xla ${(xla.step_s * 1000).toFixed(0)} ms, ${xla.peak_rss_mb.toFixed(0)} MB` : ''}) | | |`);
    const extra = { threads, backend: ours.backend ?? '?', compile: ours.compile ?? 'eager', eager_ms: (eager.step_s * 1000).toFixed(0), load: loadavg()[0].toFixed(2) };
    for (const line of stepBenchLines('scr.train-step', ours, peerMain, 'diffusers-peft-torch-cpu', extra)) console.log(line);
    if (xla && xlaRun) {
      const xlaPeer = peerRes(xlaRun.peerS);
      if (xlaPeer && peerStats) xlaPeer.peak_rss_mb = peerStats.peak_rss_mb;
      for (const line of stepBenchLines('scr.train-step-xla', xla, xlaPeer, 'diffusers-peft-torch-cpu', { ...extra, compile: `xla:${xla.compile ?? '?'}` })) console.log(line);
    }
  } finally {
    for (const p of started) await p.close().catch(() => {});
  }
}
