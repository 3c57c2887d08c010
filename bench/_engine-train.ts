/**
 * part of `npm run bench -- engine [--seconds S] [--steps N] [--no-wasm-train]`: the native TensorFlow backend
 * (`npm run setup:native`) against PyTorch 2.13 CPU and tfjs's wasm backend, measured in the
 * same run: 1024x1024 matmul and a 3x3 conv in GFLOP/s, and one Adam training step of a small
 * conv + self-attention net (explicitly padded convs, group norm, attention over 32x32 tokens,
 * nearest upsampling) from identical initial weights (written by this bench, read by the peer,
 * scripts/bench/engine-native/peer.py, which serves its steps one at a time, in turn with ours:
 * bench/_lockstep.ts). Headlines: engine.train.native and engine.train.wasm
 * (training steps per second vs PyTorch), and engine.train.native-compiled: the same step
 * through compileStep (one registered TensorFlow function per step), with the eager figure.
 */
import * as tf from '@tensorflow/tfjs-core';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, nativeBackendStatus, type BackendName } from '../framework/engine/backend.js';
import { compileStep } from '../framework/engine/compile.js';
import { Rng } from '../framework/engine/rng.js';
import { packageRoot } from '../framework/paths.js';
import { benchLine } from './_format.js';
import { alternate, LockstepPeer, median, type PeerStep } from './_lockstep.js';

const MATMUL = 1024;
const CONV: [number, number, number, number, number, number] = [1, 64, 64, 64, 64, 3]; // b, h, w, cin, cout, k
const BATCH = 4;
const SIZE = 64;
const WIDTH = 64;
const GROUPS = 8;
const LR = 1e-3;

type Pads = [[number, number], [number, number], [number, number], [number, number]];
const PAD1: Pads = [[0, 0], [1, 1], [1, 1], [0, 0]];

/** Initial weights, input and target: tfjs layouts, float32, in one file for the peer. */
function makeTensors(): Record<string, { shape: number[]; data: Float32Array }> {
  const r = Rng.derive(0, 'bench-engine-native');
  const t = (shape: number[], std: number, mean = 0) => ({ shape, data: r.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), mean, std) as Float32Array });
  return {
    w1: t([3, 3, 3, 32], Math.sqrt(2 / 27)),
    w2: t([3, 3, 32, WIDTH], Math.sqrt(2 / 288)),
    g: t([WIDTH], 0.1, 1),
    wq: t([WIDTH, WIDTH], 1 / Math.sqrt(WIDTH)),
    wk: t([WIDTH, WIDTH], 1 / Math.sqrt(WIDTH)),
    wv: t([WIDTH, WIDTH], 1 / Math.sqrt(WIDTH)),
    wo: t([WIDTH, WIDTH], 1 / Math.sqrt(WIDTH)),
    w3: t([1, 1, WIDTH, 3], 1 / Math.sqrt(WIDTH)),
    x: t([BATCH, SIZE, SIZE, 3], 1),
    y: t([BATCH, SIZE, SIZE, 3], 1),
  };
}

function lossOf(p: Record<string, tf.Tensor>, x: tf.Tensor4D, y: tf.Tensor4D): tf.Scalar {
  let h = tf.conv2d(x, p.w1 as tf.Tensor4D, 1, PAD1);
  h = tf.mul(h, tf.sigmoid(h));
  h = tf.conv2d(h, p.w2 as tf.Tensor4D, 2, PAD1);
  const [b, hh, ww, c] = h.shape;
  const grouped = tf.reshape(h, [b, hh, ww, GROUPS, c / GROUPS]);
  const { mean, variance } = tf.moments(grouped, [1, 2, 4], true);
  h = tf.mul(tf.reshape(tf.div(tf.sub(grouped, mean), tf.sqrt(tf.add(variance, 1e-5))), [b, hh, ww, c]), p.g!);
  h = tf.mul(h, tf.sigmoid(h));
  const tok = tf.reshape(h, [b * hh * ww, c]);
  const proj = (w: tf.Tensor) => tf.reshape(tf.matMul(tok, w as tf.Tensor2D), [b, hh * ww, c]);
  const att = tf.softmax(tf.div(tf.matMul(proj(p.wq!), proj(p.wk!), false, true), Math.sqrt(c)));
  const o = tf.matMul(tf.reshape(tf.matMul(att, proj(p.wv!)), [b * hh * ww, c]), p.wo as tf.Tensor2D);
  const t = tf.reshape(tf.add(tok, o), [b, hh, ww, c]) as tf.Tensor4D;
  const out = tf.conv2d(tf.image.resizeNearestNeighbor(t, [hh * 2, ww * 2]), p.w3 as tf.Tensor4D, 1, 'valid');
  return tf.mean(tf.square(tf.sub(out, y)));
}

function rate(fn: () => void, flops: number, seconds: number): number {
  fn();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    fn();
    n++;
  }
  return (flops * n) / ((performance.now() - t0) / 1000) / 1e9;
}

interface Row {
  backend: string;
  matmul: number;
  conv: number;
  stepS: number | null;
  /** the peer's median step in the rounds alternating with this row's steps */
  peerStepS?: number;
  losses: number[];
  note?: string;
}

/**
 * Kernel rates, then training steps: eager, and on native also compiled (compileStep: one
 * registered TensorFlow function per step) and through XLA, each variant with its own weights
 * and optimiser from the same start. With a peer, each variant's steps alternate with PyTorch's
 * (bench/_lockstep.ts), so a slow spell of the host hits both alike.
 */
async function measure(backend: BackendName, tensors: ReturnType<typeof makeTensors>, seconds: number, steps: number, train = true, peer?: { lockstep: LockstepPeer; steps: PeerStep[] }): Promise<Row[]> {
  const withCompiled = peer !== undefined;
  await initBackend({ prefer: backend, log: null });
  const a = tf.randomNormal([MATMUL, MATMUL]);
  const matmul = rate(() => tf.tidy(() => void tf.matMul(a as tf.Tensor2D, a as tf.Tensor2D).dataSync()), 2 * MATMUL ** 3, seconds);
  const [b, h, w, ci, co, k] = CONV;
  const cx = tf.randomNormal([b, h, w, ci]) as tf.Tensor4D;
  const cf = tf.randomNormal([k, k, ci, co]) as tf.Tensor4D;
  const conv = rate(() => tf.tidy(() => void tf.conv2d(cx, cf, 1, 'same').dataSync()), 2 * b * h * w * ci * co * k * k, seconds);
  tf.dispose([a, cx, cf]);
  if (!train) return [{ backend, matmul, conv, stepS: null, losses: [], note: 'training skipped (--no-wasm-train)' }];
  const x = tf.tensor4d(tensors.x.data, tensors.x.shape as [number, number, number, number]);
  const y = tf.tensor4d(tensors.y.data, tensors.y.shape as [number, number, number, number]);
  const variants = (withCompiled ? (['off', 'auto', 'xla'] as const) : (['off'] as const)).map((mode) => {
    const vars = Object.fromEntries(Object.entries(tensors).filter(([n]) => n !== 'x' && n !== 'y').map(([n, v]) => [n, tf.variable(tf.tensor(v.data, v.shape), true, `bench-native-${backend}-${mode}-${n}`)]));
    const opt = tf.train.adam(LR);
    // tfjs's Adam keeps its bias corrections in variables (accBeta1/2), so the whole minimize
    // (forward, gradients, update) records as one program: compiled, it runs as one function.
    const step = compileStep(({ x: xi, y: yi }: { x: tf.Tensor4D; y: tf.Tensor4D }) => ({ loss: opt.minimize(() => lossOf(vars, xi, yi), true, Object.values(vars))! }), {
      mode,
      name: 'bench-engine-train',
      log: () => {},
    });
    return { mode, vars, opt, step, losses: [] as number[] };
  });
  // compiled: the first three calls record (eager) and the fourth instantiates the function
  // (through XLA: and compiles it); the medians skip 4 calls of each variant. Each variant runs
  // its own rounds of (our step, PyTorch's step), so its ratio compares steps taken in turn
  // (bench/_lockstep.ts).
  const skip = withCompiled ? 4 : 2;
  const rows: Row[] = [];
  for (const v of variants) {
    const timed = await alternate(
      steps + skip,
      skip,
      () => {
        const { loss: l } = v.step.call({ x, y });
        v.losses.push(l!.dataSync()[0]!);
        l!.dispose();
      },
      peer?.lockstep ?? null,
    );
    peer?.steps.push(...timed.peerSteps);
    const status = v.step.status();
    const xlaNote = v.mode === 'xla' ? `, XLA ${status.xla === 'on' ? 'on' : `refused: ${status.xlaReason}`}` : '';
    const note = v.mode !== 'off' ? (status.state === 'compiled' ? `compiled (${status.compiledCalls} of ${v.losses.length} steps${xlaNote})` : `NOT compiled: ${status.reason}`) : undefined;
    v.step.dispose();
    v.opt.dispose();
    tf.dispose(Object.values(v.vars));
    rows.push({
      backend: v.mode === 'auto' ? `${backend}+compiled` : v.mode === 'xla' ? `${backend}+xla` : backend,
      matmul,
      conv,
      stepS: timed.ours,
      peerStepS: timed.peer ?? undefined,
      losses: v.losses.slice(0, 3),
      note,
    });
  }
  tf.dispose([x, y]);
  return rows;
}

export async function run(args: string[]): Promise<void> {
  const opt = (name: string, d: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : d;
  };
  const seconds = opt('--seconds', 1);
  const steps = Math.max(4, opt('--steps', 20));
  const native = nativeBackendStatus();
  if (!native.ok) console.log(`native TensorFlow backend unavailable (${native.why}); run \`npm run setup:native\` for the native rows.`);
  const tensors = makeTensors();
  // The peer: same tensors through a raw float32 file; it serves its steps one at a time, in
  // turn with ours (bench/_lockstep.ts).
  const root = packageRoot();
  const dir = mkdtempSync(join(tmpdir(), 'rass-bench-native-'));
  const file = join(dir, 'tensors.f32');
  let off = 0;
  const layout: Record<string, [number, number[]]> = {};
  const parts: Float32Array[] = [];
  for (const [n, t] of Object.entries(tensors)) {
    layout[n] = [off, t.shape];
    off += t.data.length;
    parts.push(t.data);
  }
  const all = new Float32Array(off);
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  writeFileSync(file, Buffer.from(all.buffer));
  const venv = execFileSync(join(root, 'scripts/py-venv.sh'), ['engine-native', join(root, 'scripts/bench/engine-native/requirements.txt')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const spec = { file, tensors: layout, matmul: MATMUL, conv: CONV, seconds, lr: LR, groups: GROUPS };
  const started = await LockstepPeer.start(join(venv, 'bin/python'), ['-W', 'ignore', join(root, 'scripts/bench/engine-native/peer.py'), JSON.stringify(spec)]);
  const info = started.info as { torch: string; threads: number; matmul_gflops: number; conv_gflops: number };
  const peerSteps: PeerStep[] = [];
  const rows: Row[] = [];
  try {
    if (native.ok) rows.push(...(await measure('tensorflow', tensors, seconds, steps, true, { lockstep: started.peer, steps: peerSteps })));
    // without a native backend nothing of ours runs beside the peer's steps: it runs them alone
    else for (let i = 0; i < steps; i++) peerSteps.push(await started.peer.step());
  } finally {
    await started.peer.close();
  }
  rmSync(dir, { recursive: true, force: true });
  rows.push(...(await measure('wasm', tensors, seconds, Math.max(4, Math.min(steps, 6)), !args.includes('--no-wasm-train'))));
  // over all its steps (the wasm row and the table); each native row has the peer's median of
  // the rounds it alternated with. The first two steps warm up.
  const peer = { ...info, train_step_s: median(peerSteps.slice(2).map((p) => p.step_s)), losses: peerSteps.slice(0, 3).map((p) => p.loss) };

  const nat = rows.find((r) => r.backend === 'tensorflow');
  const natCompiled = rows.find((r) => r.backend === 'tensorflow+compiled');
  const natXla = rows.find((r) => r.backend === 'tensorflow+xla');
  const wasm = rows.find((r) => r.backend === 'wasm')!;
  const fmt = (x: number | null, d = 1) => (x === null ? 'n/a' : x.toFixed(d));
  console.log(`tfjs ${tf.version_core}, native ${native.ok ? `via ${native.via}` : 'unavailable'}; PyTorch ${peer.torch} (${peer.threads} threads)`);
  console.log(`net: batch ${BATCH} ${SIZE}x${SIZE}, conv 3->32, conv s2 32->${WIDTH}, group norm, attention over ${(SIZE / 2) ** 2} tokens, nearest up, 1x1 conv; Adam`);
  console.log('backend      matmul 1024 GFLOP/s   conv3x3 64ch GFLOP/s   train step ms   first losses');
  for (const r of [...rows, { backend: 'pytorch', matmul: peer.matmul_gflops, conv: peer.conv_gflops, stepS: peer.train_step_s, losses: peer.losses }] as Row[]) {
    const alongside = r.peerStepS !== undefined ? `; PyTorch ${fmt(r.peerStepS * 1000)} ms in the same rounds` : '';
    const notes = [r.note, alongside.slice(2)].filter(Boolean).join('; ');
    console.log(`${r.backend.padEnd(12)} ${fmt(r.matmul).padStart(19)}   ${fmt(r.conv).padStart(20)}   ${fmt(r.stepS === null ? null : r.stepS * 1000).padStart(13)}   ${r.losses.map((v) => v.toFixed(6)).join(' ')}${notes ? `  (${notes})` : ''}`);
  }
  // Same network, same start: the first losses must agree (else the timings compare different work).
  for (const r of rows) {
    if (!r.losses.length) continue;
    const rel = Math.abs(r.losses[0]! - peer.losses[0]!) / Math.abs(peer.losses[0]!);
    console.log(`first-step loss ${r.backend} vs PyTorch: rel diff ${rel.toExponential(2)}${rel > 1e-4 ? '  WARNING: the two sides do not compute the same loss' : ''}`);
  }
  if (wasm.stepS !== null) console.log(benchLine('engine.train.wasm', 1 / wasm.stepS, 'steps/s', 'pytorch', 1 / peer.train_step_s, peer.train_step_s / wasm.stepS));
  if (nat) {
    console.log(benchLine('engine.matmul.native', nat.matmul, 'GFLOP/s', 'pytorch', peer.matmul_gflops, nat.matmul / peer.matmul_gflops));
    console.log(benchLine('engine.conv.native', nat.conv, 'GFLOP/s', 'pytorch', peer.conv_gflops, nat.conv / peer.conv_gflops));
    console.log(trainLine('engine.train.native', nat, peer.train_step_s));
  }
  if (nat && natCompiled) {
    // the compiled step (framework/engine/compile.ts), with the eager step beside it
    console.log(trainLine('engine.train.native-compiled', natCompiled, peer.train_step_s, { eager_ms: nat.stepS! * 1000, compiled_ms: natCompiled.stepS! * 1000, vs_eager: nat.stepS! / natCompiled.stepS! }));
  }
  if (nat && natCompiled && natXla) {
    // the same step with compile: xla
    console.log(trainLine('engine.train.native-xla', natXla, peer.train_step_s, { eager_ms: nat.stepS! * 1000, compiled_ms: natCompiled.stepS! * 1000, xla_ms: natXla.stepS! * 1000 }));
  }
}

/** A native training row's BENCH line, against the peer's steps taken in turn with its own. */
function trainLine(id: string, row: Row, peerOverall: number, extra: Record<string, number> = {}): string {
  const peerS = row.peerStepS ?? peerOverall;
  return benchLine(id, 1 / row.stepS!, 'steps/s', 'pytorch', 1 / peerS, peerS / row.stepS!, { ...extra, peer_ms: peerS * 1000 });
}
