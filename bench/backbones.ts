/**
 * `npm run bench -- backbones [--backend auto|wasm|cpu|tensorflow] [--iters N] [--threads N] [--only forward|lora|sd21] [--latents 64,128] [--checkpoint]`:
 * 1. the SD UNet (tiny and a mid-size config) forward and forward+backward (gradients for
 *    every parameter, loss mean(y^2)) vs diffusers on torch CPU, each pass in turn with the
 *    peer's (bench/_lockstep.ts). Headline: backbones.unet-train;
 *    backbones.unet-train-compiled: the same fwd+bwd through compileStep (eager figure beside it).
 * 2. the LoRA training step as a user runs it (tiny UNet, rank-4 LoRA on to_q/to_k/to_v/to_out.0,
 *    batch 2, 77 prompt tokens, loss mean(y^2), LoRA gradients) vs diffusers + peft, each side
 *    in its own process so peak RSS is its own: backbones.unet-train-64 (time at a 64x64
 *    latent), backbones.unet-train-memory (peak RSS ratio, PyTorch / ours, at 64x64) and the
 *    128x128 acceptance step (both memories printed). `--checkpoint` adds our step with
 *    `checkpoint: blocks`.
 * 3. backbones.sd21-block-train(-memory): the same LoRA step on sd21-base's first level at real
 *    widths (SD21_BLOCK_UNET), latent 64, batch 1: time and peak RSS against diffusers + peft;
 *    backbones.sd21-block-train(-memory)-compiled: the same step through compileStep.
 * Both sides run with the same thread count (--threads, default: the cores this process may
 * use), printed with the machine load on every BENCH line; a busy machine is warned about.
 */
import * as tf from '@tensorflow/tfjs-core';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { initBackend, parseBackendName, type BackendPreference } from '../framework/engine/backend.js';
import { Rng } from '../framework/engine/rng.js';
import { TINY_UNET } from '../registry/backbones/sd/presets.js';
import { UNet2DConditionModel, type UNetConfig } from '../registry/backbones/sd/unet.js';
import { benchLine, benchThreads, machineLoad } from './_format.js';
import { alternate, startPythonPeer, type LockstepPeer } from './_lockstep.js';
import { compileStep, type CompileMode } from '../framework/engine/compile.js';
import type { LoraStepResult, LoraStepSpec } from './_unet-lora-step.js';

interface Case {
  name: string;
  config: UNetConfig;
  batch: number;
  size: number;
  tokens: number;
  iters: number;
}

const MID_UNET: UNetConfig = {
  ...TINY_UNET,
  block_out_channels: [64, 128, 256],
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  layers_per_block: 2,
  cross_attention_dim: 64,
  attention_head_dim: 4,
};

interface Ours {
  forward: number;
  train: number | null;
  trainCompiled: number | null;
  compiledNote: string;
  /** the compiled step through XLA (compile: xla) */
  trainXla: number | null;
  xlaNote: string;
  /** the peer's median of the same pass, in the rounds alternating with each of ours */
  peer: { forward: number | null; train: number | null; trainCompiled: number | null; trainXla: number | null };
}

/** Ours for one case, each measurement in turn with the peer's same pass (bench/_lockstep.ts). */
async function measureOurs(c: Case, peer: LockstepPeer | null): Promise<Ours> {
  const unet = new UNet2DConditionModel(c.config, 0);
  const r = Rng.derive(0, 'bench');
  const x = tf.tensor4d(r.fillNormal(new Float32Array(c.batch * c.size * c.size * c.config.in_channels)) as Float32Array, [c.batch, c.size, c.size, c.config.in_channels]);
  const ctx = tf.tensor3d(r.fillNormal(new Float32Array(c.batch * c.tokens * c.config.cross_attention_dim)) as Float32Array, [c.batch, c.tokens, c.config.cross_attention_dim]);
  const vars = [...unet.store.params.values()].map((p) => p.variable);
  const canTrain = ['Mean', 'Conv2D', 'Erf', 'Tile', 'BatchMatMul'].every((k) => tf.getGradient(k));
  const fwd = await alternate(
    c.iters + 1,
    1,
    () => {
      const y = unet.forward(x, 999, ctx).sample;
      y.dataSync();
      y.dispose();
    },
    peer,
    `${c.name}:forward`,
  );
  const train = canTrain
    ? await alternate(
        c.iters + 1,
        1,
        () => {
          const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(unet.run(x, 999, ctx))) as tf.Scalar, vars);
          for (const g of Object.values(grads)) g.dataSync();
          tf.dispose([value, ...Object.values(grads)]);
        },
        peer,
        `${c.name}:train`,
      )
    : null;
  // The same fwd+bwd through compileStep (framework/engine/compile.ts): the gradients are the
  // function's outputs. Calls 1-2 record, call 3 instantiates the function (and, through XLA,
  // compiles it there); then `iters` timed.
  const compiled = async (mode: CompileMode): Promise<{ time: number | null; peer: number | null; note: string }> => {
    if (!canTrain) return { time: null, peer: null, note: 'not measured' };
    const step = compileStep(({ x: xi, ctx: ci }: { x: tf.Tensor4D; ctx: tf.Tensor3D }) => {
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(unet.run(xi, 999, ci))) as tf.Scalar, vars);
      return { loss: value, ...grads };
    }, { name: 'bench-unet-train', mode, log: () => {} });
    const timed = await alternate(
      c.iters + 3,
      3,
      () => {
        const out = step.call({ x, ctx });
        for (const g of Object.values(out)) g.dataSync();
        tf.dispose(Object.values(out));
      },
      peer,
      `${c.name}:train`,
    );
    const st = step.status();
    step.dispose();
    const note = st.state === 'compiled' ? (mode === 'xla' ? `XLA ${st.xla === 'on' ? 'on' : `refused: ${st.xlaReason}`}` : 'compiled') : `eager: ${st.reason}`;
    return { time: st.state === 'compiled' ? timed.ours : null, peer: timed.peer, note };
  };
  const plain = await compiled('auto');
  const xla = plain.time !== null ? await compiled('xla') : { time: null, peer: null, note: 'not measured' };
  tf.dispose([x, ctx]);
  unet.dispose();
  return {
    forward: fwd.ours,
    train: train?.ours ?? null,
    trainCompiled: plain.time,
    compiledNote: plain.note,
    trainXla: xla.time,
    xlaNote: xla.note,
    peer: { forward: fwd.peer, train: train?.peer ?? null, trainCompiled: plain.peer, trainXla: xla.peer },
  };
}

function peerVenv(): string {
  const root = process.cwd();
  const req = join(root, 'scripts/fixtures/backbones/requirements.txt');
  return execFileSync(join(root, 'scripts/py-venv.sh'), ['backbones', req], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/** The diffusers peer serving each case's forward and training passes on request; null where it cannot start. */
async function startPeer(cases: Case[], threads: number): Promise<{ peer: LockstepPeer; threads: number; torch: string } | null> {
  const dir = join(process.cwd(), 'scripts/fixtures/backbones');
  const s = await startPythonPeer('diffusers on torch CPU', { venv: 'backbones', requirements: join(dir, 'requirements.txt'), script: join(dir, 'bench_peer.py'), args: [JSON.stringify({ threads, cases })] });
  return s && { peer: s.peer, threads: Number(s.info.threads), torch: String(s.info.torch) };
}

interface LoraCase {
  latent: number;
  iters: number;
  /** default: the tiny preset, batch 2 */
  config?: UNetConfig;
  batch?: number;
}

/**
 * backbones.sd21-block-train: sd21-base's first resolution level at its real widths (random
 * weights): CrossAttnDownBlock2D at 320 channels with 2 resnets + 2 transformer blocks (5 heads
 * of 64, linear projections, cross-attention to 1024-wide text), the cross-attention mid block
 * at 320, and (a UNet needs one) the matching CrossAttnUpBlock2D (3 resnets + 3 transformer
 * blocks). At a 64x64 latent every transformer block attends over 4,096 tokens: the attention
 * memory of paper-scale RASS, on one level.
 */
export const SD21_BLOCK_UNET: UNetConfig = {
  in_channels: 4,
  out_channels: 4,
  block_out_channels: [320],
  down_block_types: ['CrossAttnDownBlock2D'],
  up_block_types: ['CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  layers_per_block: 2,
  cross_attention_dim: 1024,
  attention_head_dim: 5,
  norm_num_groups: 32,
  norm_eps: 1e-5,
  use_linear_projection: true,
  flip_sin_to_cos: true,
  freq_shift: 0,
  sample_size: 64,
};

interface PeerLoraResult {
  step_s: number;
  cpu_s: number;
  peak_rss_bytes: number;
  threads: number;
  interop_threads: number;
  torch: string;
}

/** Our LoRA step in a fresh process (its own peak RSS, its own native thread pools). */
function oursLora(c: LoraCase, backend: BackendPreference, threads: number, checkpoint: 'none' | 'blocks', compile = false): LoraStepResult | string {
  const spec: LoraStepSpec = { latent: c.latent, batch: c.batch ?? 2, tokens: 77, iters: c.iters, threads, backend, checkpoint, attentionChunk: 0, compile, ...(c.config ? { config: c.config } : {}) };
  try {
    const out = execFileSync(process.execPath, [join(process.cwd(), 'dist/bench/_unet-lora-step.js'), JSON.stringify(spec)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 20 });
    return JSON.parse(out.trim().split('\n').pop() as string) as LoraStepResult;
  } catch (e) {
    return (e as Error).message.split('\n').slice(0, 2).join(' ');
  }
}

function peerLora(c: LoraCase, threads: number): PeerLoraResult | string {
  try {
    const spec = { config: c.config ?? TINY_UNET, latent: c.latent, batch: c.batch ?? 2, tokens: 77, iters: c.iters, threads };
    const out = execFileSync(join(peerVenv(), 'bin/python'), [join(process.cwd(), 'scripts/fixtures/backbones/bench_peer_lora.py'), JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    return JSON.parse(out.trim().split('\n').pop() as string) as PeerLoraResult;
  } catch (e) {
    return (e as Error).message.split('\n').slice(0, 2).join(' ');
  }
}

/** backbones.sd21-block-train: time and memory of the sd21-base level-0 LoRA step (latent 64, batch 1) against diffusers + peft. */
function sd21BlockSection(backend: BackendPreference, threads: number): void {
  // three timed steps each (the median): one step's time moves 1.3x between runs on a shared machine
  const c: LoraCase = { latent: 64, iters: 3, config: SD21_BLOCK_UNET, batch: 1 };
  console.log(`\nLoRA training step: sd21-base level 0 (320 ch, 5 heads x 64, 4,096 tokens per attention, cross-attention 1024), rank-4 LoRA on to_q/to_k/to_v/to_out.0, latent 64, batch 1, 77 tokens; ${threads} thread(s) on both sides`);
  const start = machineLoad(threads);
  const ours = oursLora(c, backend, threads, 'none');
  // the same step as one compiled TensorFlow function (native only; engine/compile.ts)
  const compiled = tf.getBackend() === 'tensorflow' ? oursLora(c, backend, threads, 'none', true) : null;
  const peer = peerLora(c, threads);
  const load = Math.max(start.load, machineLoad(threads).load);
  if (start.warning) console.log(start.warning);
  const show = (side: string, r: { step_s: number; cpu_s: number; peak_rss_bytes: number } | string) =>
    console.log(typeof r === 'string' ? `${side}: failed: ${r}` : `${side}: ${(r.step_s * 1000).toFixed(0)} ms/step, ${r.cpu_s.toFixed(2)} CPU-s, peak RSS ${(r.peak_rss_bytes / 2 ** 30).toFixed(2)} GB`);
  show('ours', ours);
  if (compiled) show('ours, compiled step', compiled);
  show('diffusers+peft', peer);
  const o = typeof ours === 'string' ? null : ours;
  const oc = compiled && typeof compiled !== 'string' ? compiled : null;
  const p = typeof peer === 'string' ? null : peer;
  const extra = { threads, load: load.toFixed(2) };
  const lines = (suffix: string, r: LoraStepResult | null) => {
    console.log(benchLine(`backbones.sd21-block-train${suffix}`, r ? r.step_s * 1000 : NaN, 'ms', 'diffusers-peft-torch-cpu', p ? p.step_s * 1000 : NaN, r && p ? p.step_s / r.step_s : NaN, extra));
    console.log(benchLine(`backbones.sd21-block-train-memory${suffix}`, r ? r.peak_rss_bytes / 2 ** 30 : NaN, 'GB', 'diffusers-peft-torch-cpu', p ? p.peak_rss_bytes / 2 ** 30 : NaN, r && p ? p.peak_rss_bytes / r.peak_rss_bytes : NaN, extra));
  };
  lines('', o);
  if (compiled) lines('-compiled', oc);
}

function loraSection(backend: BackendPreference, threads: number, iters: number, withCheckpoint: boolean, latents: number[]): void {
  const gb = (b: number) => `${(b / 2 ** 30).toFixed(2)} GB`;
  const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
  const cases: LoraCase[] = latents.map((latent) => ({ latent, iters: latent > 64 ? 1 : iters }));
  console.log(`\nLoRA training step: tiny UNet, rank-4 LoRA on to_q/to_k/to_v/to_out.0, batch 2, 77 tokens, loss mean(y^2); ${threads} thread(s) on both sides`);
  console.log('| latent | side | ms/step | CPU s/step (all threads) | peak RSS |');
  console.log('|---|---|---|---|---|');
  for (const c of cases) {
    const start = machineLoad(threads);
    const ours = oursLora(c, backend, threads, 'none');
    const ck = withCheckpoint ? oursLora(c, backend, threads, 'blocks') : null;
    // the same step as one compiled TensorFlow function (native only; engine/compile.ts)
    const compiled = tf.getBackend() === 'tensorflow' ? oursLora(c, backend, threads, 'none', true) : null;
    const peer = peerLora(c, threads);
    const end = machineLoad(threads);
    const load = Math.max(start.load, end.load);
    for (const w of [start.warning, end.warning]) if (w) console.log(w);
    const row = (side: string, r: { step_s: number; cpu_s: number; peak_rss_bytes: number } | string) =>
      console.log(typeof r === 'string' ? `| ${c.latent}x${c.latent} | ${side} | failed: ${r} | | |` : `| ${c.latent}x${c.latent} | ${side} | ${ms(r.step_s)} | ${r.cpu_s.toFixed(2)} | ${gb(r.peak_rss_bytes)} |`);
    row(typeof ours === 'string' ? 'ours' : `ours (${ours.backend}, ${ours.threads ?? '?'} threads)`, ours);
    if (ck) row('ours, checkpoint: blocks', ck);
    if (compiled) row('ours, compiled step', compiled);
    row(typeof peer === 'string' ? 'diffusers+peft' : `diffusers+peft (torch ${peer.torch}, ${peer.threads}/${peer.interop_threads} threads)`, peer);
    const extra = { threads, load: load.toFixed(2) };
    const o = typeof ours === 'string' ? null : ours;
    const p = typeof peer === 'string' ? null : peer;
    const suffix = c.latent === 64 ? '' : `-${c.latent}`;
    console.log(benchLine(`backbones.unet-train-memory${suffix}`, o ? o.peak_rss_bytes / 2 ** 30 : NaN, 'GB', 'diffusers-peft-torch-cpu', p ? p.peak_rss_bytes / 2 ** 30 : NaN, o && p ? p.peak_rss_bytes / o.peak_rss_bytes : NaN, extra));
    console.log(benchLine(`backbones.unet-train-${c.latent}`, o ? o.step_s * 1000 : NaN, 'ms', 'diffusers-peft-torch-cpu', p ? p.step_s * 1000 : NaN, o && p ? p.step_s / o.step_s : NaN, extra));
    if (compiled && typeof compiled !== 'string') {
      console.log(benchLine(`backbones.unet-train-memory${suffix}-compiled`, compiled.peak_rss_bytes / 2 ** 30, 'GB', 'diffusers-peft-torch-cpu', p ? p.peak_rss_bytes / 2 ** 30 : NaN, p ? p.peak_rss_bytes / compiled.peak_rss_bytes : NaN, extra));
      console.log(benchLine(`backbones.unet-train-${c.latent}-compiled`, compiled.step_s * 1000, 'ms', 'diffusers-peft-torch-cpu', p ? p.step_s * 1000 : NaN, p ? p.step_s / compiled.step_s : NaN, extra));
    }
    if (ck && typeof ck !== 'string') {
      console.log(benchLine(`backbones.unet-train-memory${suffix}-checkpoint`, ck.peak_rss_bytes / 2 ** 30, 'GB', 'diffusers-peft-torch-cpu', p ? p.peak_rss_bytes / 2 ** 30 : NaN, p ? p.peak_rss_bytes / ck.peak_rss_bytes : NaN, extra));
    }
  }
}

export async function run(args: string[]): Promise<void> {
  // default: the engine's chain (native TensorFlow when `npm run setup:native` built it, else wasm)
  const bi = args.indexOf('--backend');
  const backend = bi >= 0 ? parseBackendName(args[bi + 1] ?? '', '--backend') : 'auto';
  const ii = args.indexOf('--iters');
  const iters = ii >= 0 ? Number(args[ii + 1]) : 3;
  const oi = args.indexOf('--only');
  const only = oi >= 0 ? args[oi + 1] : undefined;
  const threads = benchThreads(args);
  const before = machineLoad(threads);
  console.log(`threads: ${threads} (ours: native TensorFlow intra-/inter-op; peer: torch.set_num_threads / set_num_interop_threads); load average ${before.load.toFixed(2)}`);
  if (before.warning) console.log(before.warning);
  await initBackend({ prefer: backend, threads, log: null });
  if (only === undefined || only === 'forward') await forwardSection(iters, threads);
  const li = args.indexOf('--latents');
  const latents = li >= 0 ? String(args[li + 1]).split(',').map(Number) : [64, 128];
  if (latents.some((l) => !(Number.isInteger(l) && l >= 8))) throw new Error(`--latents: expected comma-separated sizes, got "${args[li + 1]}"`);
  if (only !== 'forward' && only !== 'sd21') loraSection(backend, threads, iters, args.includes('--checkpoint'), latents);
  if (only === undefined || only === 'sd21') sd21BlockSection(backend, threads);
}

async function forwardSection(iters: number, threads: number): Promise<void> {
  // at least 10 timed steps of the tiny UNet (tens of ms each): fewer medians move with the host
  const cases: Case[] = [
    { name: 'tiny', config: TINY_UNET, batch: 2, size: 16, tokens: 8, iters: Math.max(iters, 10) },
    { name: 'mid', config: MID_UNET, batch: 1, size: 32, tokens: 16, iters: Math.max(3, Math.ceil(iters / 2)) },
  ];
  const started = await startPeer(cases, threads);
  const ours = new Map<string, Ours>();
  try {
    for (const c of cases) ours.set(c.name, await measureOurs(c, started?.peer ?? null));
  } finally {
    await started?.peer.close();
  }
  const f = (s: number | null | undefined) => (s == null ? 'n/a' : `${(s * 1000).toFixed(1)} ms`);
  const ratio = (p: number | null, o: number | null) => (p != null && o ? (p / o).toFixed(3) : 'n/a');
  console.log(`backend: ${tf.getBackend()}; peer: diffusers UNet2DConditionModel on torch CPU${started ? ` (${started.torch}, ${started.threads} threads)` : ''}; each row's diffusers time is from the passes alternating with ours`);
  console.log('| UNet | pass | ours | diffusers | speed ratio |');
  console.log('|---|---|---|---|---|');
  for (const c of cases) {
    const o = ours.get(c.name) as Ours;
    const p = o.peer;
    console.log(`| ${c.name} (${c.config.block_out_channels.join('/')}, ${c.batch}x${c.size}x${c.size}) | forward | ${f(o.forward)} | ${f(p.forward)} | ${ratio(p.forward, o.forward)} |`);
    console.log(`| ${c.name} | forward+backward | ${f(o.train)} | ${f(p.train)} | ${ratio(p.train, o.train)} |`);
    console.log(`| ${c.name} | forward+backward, compiled step (${o.compiledNote}) | ${f(o.trainCompiled)} | ${f(p.trainCompiled)} | ${ratio(p.trainCompiled, o.trainCompiled)} |`);
    console.log(`| ${c.name} | forward+backward, compiled through XLA (${o.xlaNote}) | ${f(o.trainXla)} | ${f(p.trainXla)} | ${ratio(p.trainXla, o.trainXla)} |`);
  }
  if (!ours.get('tiny')?.train) console.log('forward+backward not measured: tfjs gradients are not registered on this backend (engine training kernels pending)');
  const tiny = ours.get('tiny') as Ours;
  const pt = tiny.peer;
  const extra = { threads, load: machineLoad(threads).load.toFixed(2) };
  const line = (id: string, o: number, p: number | null, more: Record<string, string | number> = {}) => benchLine(id, o * 1000, 'ms', 'diffusers-torch-cpu', p != null ? p * 1000 : NaN, p != null ? p / o : NaN, { ...extra, ...more });
  console.log(line('backbones.unet-forward', tiny.forward, pt.forward));
  const train = tiny.train ?? NaN;
  console.log(line('backbones.unet-train', train, pt.train));
  const compiled = tiny.trainCompiled ?? NaN;
  console.log(line('backbones.unet-train-compiled', compiled, pt.trainCompiled, { eager_ms: train * 1000 }));
  if (tiny.trainXla !== null) console.log(line('backbones.unet-train-xla', tiny.trainXla, pt.trainXla, { eager_ms: train * 1000, compiled_ms: compiled * 1000 }));
}
