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
 * own process, so peak RSS is that step's, and the two take steps in turn (bench/_lockstep.ts). Headlines: rass.train-step (steps/s, ratio = ours /
 * peer) and rass.train-step-memory (peak RSS, ratio = peer / ours).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchThreads, machineLoad, stepBenchLines } from './_format.js';
import { alternate, LockstepPeer, median, startPythonPeer, type PeerStep } from './_lockstep.js';

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
  // Both steps run in served processes (bench/_lockstep.ts), each its own peak RSS, and take turns:
  // one of ours, one of the peer's, so a slow spell of a shared host lands on both.
  const started: LockstepPeer[] = [];
  const serve = async (command: string, argv: string[]) => {
    const s = await LockstepPeer.start(command, argv, env);
    started.push(s.peer);
    return s;
  };
  try {
    const data = join(dir, 'batches.safetensors');
    const oursSide = await serve(process.execPath, [join(root, 'dist/bench/_rass-step.js'), iters, batch, String(threads), data]);
    const spec = oursSide.info as Record<string, unknown> & { warm: number; trainable: number; backend?: string; threads: number | null };
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
    const p = await startPythonPeer('diffusers + peft + PyTorch head on torch CPU', {
      venv: 'backbones',
      requirements: join(root, 'scripts/fixtures/backbones/requirements.txt'),
      script: join(root, 'scripts/bench/rass_peer.py'),
      args: [prior, adapter, data, join(dir, 'spec.json'), String(threads)],
      env,
    });
    if (p) started.push(p.peer);
    const peerSide = p?.peer ?? null;
    const peerInfo = p?.info ?? {};
    // the same model on both sides: Seg LoRA modules (peft's target matching), conv_in, projections, head
    if (peerSide && peerInfo.trainable !== spec.trainable) throw new Error(`rass bench: the peer trains ${String(peerInfo.trainable)} parameters, ours ${spec.trainable}; the two steps are not the same model`);
    const rounds = Number(iters) + 1;
    // skipped: our recordings (2; 3 through XLA), and as many of the peer's first steps
    const main = await alternate(rounds, spec.warm, () => oursSide.peer.step('step'), peerSide);
    const eager = await alternate(Math.min(3, rounds), 1, () => oursSide.peer.step('eager'), null);
    const oursStats = await oursSide.peer.stats();
    const result = (t: { ours: number; oursSteps: PeerStep[] }, stats: { peak_rss_mb: number }, info: Record<string, unknown>, skip: number): Result => ({
      step_s: t.ours,
      cpu_s: median(t.oursSteps.slice(skip).map((x) => x.cpu_s)),
      peak_rss_mb: stats.peak_rss_mb,
      threads: (info.threads as number | null) ?? null,
      backend: info.backend as string | undefined,
      torch: info.torch as string | undefined,
      losses: t.oursSteps.map((x) => x.loss),
      trainable: info.trainable as number,
    });
    const ours: Result = { ...result(main, oursStats, spec, spec.warm), compile: String(oursStats.compile), eager_step_s: eager.ours };
    const peer: Result | null = peerSide ? result({ ours: main.peer!, oursSteps: main.peerSteps }, await peerSide.stats(), peerInfo, spec.warm) : null;
    await oursSide.peer.close();
    // the same step through XLA (compile: xla), in its own process for its own peak RSS, in turn
    // with more of the peer's steps
    let xla: Result | null = null;
    let xlaPeerS: number | null = null;
    if (ours.compile === 'compiled') {
      const x = await serve(process.execPath, [join(root, 'dist/bench/_rass-step.js'), iters, batch, String(threads), join(dir, 'xla.safetensors'), 'xla']);
      const xi = x.info as { warm: number };
      const t = await alternate(rounds, xi.warm, () => x.peer.step('step'), peerSide);
      const xs = await x.peer.stats();
      xla = { ...result(t, xs, x.info, xi.warm), compile: String(xs.compile) };
      xlaPeerS = t.peer;
      await x.peer.close();
    }
    const loss = (r: Result) => r.losses.map((l) => l.toFixed(2)).join(' ');
    console.log('| RASS step | ours | diffusers + peft + PyTorch head |');
    console.log('|---|---|---|');
    console.log(`| time (median, steps taken in turn; after warm-up: ${spec.warm} each, our recordings) | ${(ours.step_s * 1000).toFixed(0)} ms (${ours.backend}, ${ours.threads ?? '?'} threads, ${ours.compile}; eager ${((ours.eager_step_s ?? NaN) * 1000).toFixed(0)} ms) | ${peer ? `${(peer.step_s * 1000).toFixed(0)} ms (torch ${peer.torch}, ${peer.threads} threads)` : 'n/a'} |`);
    if (xla) console.log(`| time through XLA (compile: xla; warm-up 3: the recordings and XLA's compilation) | ${(xla.step_s * 1000).toFixed(0)} ms, peak RSS ${xla.peak_rss_mb.toFixed(0)} MB | ${xlaPeerS !== null ? `${(xlaPeerS * 1000).toFixed(0)} ms in the same rounds` : ''} |`);
    console.log(`| CPU time per step (all threads) | ${ours.cpu_s.toFixed(2)} s | ${peer ? `${peer.cpu_s.toFixed(2)} s` : 'n/a'} |`);
    console.log(`| peak RSS | ${ours.peak_rss_mb.toFixed(0)} MB | ${peer ? `${peer.peak_rss_mb.toFixed(0)} MB` : 'n/a'} |`);
    console.log(`| trainable parameters | ${ours.trainable} | ${peer?.trainable ?? 'n/a'} |`);
    console.log(`| loss per step | ${loss(ours)} | ${peer ? loss(peer) : 'n/a'} |`);
    const extra = { threads, backend: ours.backend ?? '?', compile: ours.compile ?? '?', eager_ms: ((ours.eager_step_s ?? NaN) * 1000).toFixed(0), load: Math.max(before.load, machineLoad(threads).load).toFixed(2) };
    for (const line of stepBenchLines('rass.train-step', ours, peer, 'diffusers-peft-torch-cpu', extra)) console.log(line);
    if (xla) for (const line of stepBenchLines('rass.train-step-xla', xla, peer && xlaPeerS !== null ? { ...peer, step_s: xlaPeerS } : peer, 'diffusers-peft-torch-cpu', { ...extra, compile: `xla:${xla.compile ?? '?'}` })) console.log(line);
  } finally {
    for (const p of started) await p.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}
