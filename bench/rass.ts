/**
 * `npm run bench -- rass [--iters N] [--threads T]`: one RASS training step on the tiny prior
 * (models/tiny-shapes, preset `tiny-shapes`) at 64x64, batch 2, as configs/rass/shapes-tiny.yaml
 * builds it: UNet with the SCR adapter merged (tests/fixtures/scr/adapter) + a new rank-4 Seg
 * LoRA + conv_in trainable, timestep 1, taps vae.encoder.down_blocks.1 / unet.mid_block /
 * unet.up_blocks.0 / unet.up_blocks.1, 1x1 projections summed per stride, the Mask2Former head
 * with its criterion (Hungarian matching, 1024 sampled points, deep supervision), backward,
 * clipping, AdamW with the backbone lr multiplier. Ours: the experiment's own buildModel +
 * RassStep (bench/_rass-step.ts; compiled on native, the eager step timed beside it) on the native backend when built (`initBackend` auto). Peer:
 * the same step in diffusers + peft + the PyTorch port of our head and criterion on torch CPU
 * (scripts/bench/rass_peer.py), on the same batches, same thread count. Each side runs in its
 * own process, so peak RSS is that step's. Headlines: rass.train-step (steps/s, ratio = ours /
 * peer) and rass.train-step-memory (peak RSS, ratio = peer / ours).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchThreads, machineLoad, stepBenchLines } from './_format.js';

interface Result {
  step_s: number;
  /** process CPU seconds per step, all threads: less sensitive than wall time to other work on the machine */
  cpu_s: number;
  peak_rss_mb: number;
  threads: number | null;
  backend?: string;
  torch?: string;
  losses: number[];
  trainable: number;
  /** ours: whether the timed steps ran compiled, and the eager step's time beside it */
  compile?: string;
  eager_step_s?: number;
}

function arg(args: string[], name: string, dflt: string): string {
  const i = args.indexOf(name);
  return i >= 0 ? (args[i + 1] ?? dflt) : dflt;
}

export async function run(args: string[]): Promise<void> {
  const root = process.cwd();
  const iters = arg(args, '--iters', '6');
  const threads = benchThreads(args);
  const prior = join(root, 'models/tiny-shapes');
  const adapter = join(root, 'tests/fixtures/scr/adapter');
  const batch = '2';
  const before = machineLoad(threads);
  console.log(`RASS step: ${prior} (SCR adapter ${adapter} merged), batch ${batch}, 64x64, ${threads} thread(s) each; load average ${before.load.toFixed(2)}`);
  if (before.warning) console.log(before.warning);
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), TF_CPP_MIN_LOG_LEVEL: '2' };
  const dir = mkdtempSync(join(tmpdir(), 'rass-bench-'));
  try {
    const data = join(dir, 'batches.safetensors');
    const out = execFileSync(process.execPath, [join(root, 'dist/bench/_rass-step.js'), iters, batch, String(threads), data], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
    const spec = JSON.parse(out.trim().split('\n').pop() as string) as Result & Record<string, unknown>;
    const ours: Result = spec;
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
    // the same step through XLA (compile: xla), in its own process for its own peak RSS
    const xla = ours.compile === 'compiled'
      ? JSON.parse(execFileSync(process.execPath, [join(root, 'dist/bench/_rass-step.js'), iters, batch, String(threads), join(dir, 'xla.safetensors'), 'xla'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 }).trim().split('\n').pop() as string) as Result
      : null;
    let peer: Result | null = null;
    try {
      const venv = execFileSync(join(root, 'scripts/py-venv.sh'), ['backbones', join(root, 'scripts/fixtures/backbones/requirements.txt')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
      const res = execFileSync(join(venv, 'bin/python'), [join(root, 'scripts/bench/rass_peer.py'), prior, adapter, data, join(dir, 'spec.json'), iters, String(threads)], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      peer = JSON.parse(res.trim().split('\n').pop() as string) as Result;
    } catch (e) {
      console.log(`peer (diffusers + peft + PyTorch head on torch CPU) unavailable: ${(e as Error).message.split('\n')[0]}`);
    }
    // the same model on both sides: Seg LoRA modules (peft's target matching), conv_in, projections, head
    if (peer && peer.trainable !== ours.trainable) throw new Error(`rass bench: the peer trains ${peer.trainable} parameters, ours ${ours.trainable}; the two steps are not the same model`);
    const loss = (r: Result) => r.losses.map((l) => l.toFixed(2)).join(' ');
    console.log('| RASS step | ours | diffusers + peft + PyTorch head |');
    console.log('|---|---|---|');
    console.log(`| time (median, after warm-up: ours 2 when compiled, the recordings; peer 1) | ${(ours.step_s * 1000).toFixed(0)} ms (${ours.backend}, ${ours.threads ?? '?'} threads, ${ours.compile}; eager ${((ours.eager_step_s ?? NaN) * 1000).toFixed(0)} ms) | ${peer ? `${(peer.step_s * 1000).toFixed(0)} ms (torch ${peer.torch}, ${peer.threads} threads)` : 'n/a'} |`);
    if (xla) console.log(`| time through XLA (compile: xla; warm-up 3: the recordings and XLA's compilation) | ${(xla.step_s * 1000).toFixed(0)} ms, peak RSS ${xla.peak_rss_mb.toFixed(0)} MB | |`);
    console.log(`| CPU time per step (all threads) | ${ours.cpu_s.toFixed(2)} s | ${peer ? `${peer.cpu_s.toFixed(2)} s` : 'n/a'} |`);
    console.log(`| peak RSS | ${ours.peak_rss_mb.toFixed(0)} MB | ${peer ? `${peer.peak_rss_mb.toFixed(0)} MB` : 'n/a'} |`);
    console.log(`| trainable parameters | ${ours.trainable} | ${peer?.trainable ?? 'n/a'} |`);
    console.log(`| loss per step | ${loss(ours)} | ${peer ? loss(peer) : 'n/a'} |`);
    const extra = { threads, backend: ours.backend ?? '?', compile: ours.compile ?? '?', eager_ms: ((ours.eager_step_s ?? NaN) * 1000).toFixed(0), load: Math.max(before.load, machineLoad(threads).load).toFixed(2) };
    for (const line of stepBenchLines('rass.train-step', ours, peer, 'diffusers-peft-torch-cpu', extra)) console.log(line);
    if (xla) for (const line of stepBenchLines('rass.train-step-xla', xla, peer, 'diffusers-peft-torch-cpu', { ...extra, compile: `xla:${xla.compile ?? '?'}` })) console.log(line);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
