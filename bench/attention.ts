/**
 * `npm run bench -- attention [--iters N] [--threads N]`: one attention's forward + backward
 * (gradients of q, k and v) on the native backend, at the shapes the diffusion UNets train
 * with, against PyTorch's scaled_dot_product_attention (its flash-attention CPU kernel) with the
 * same thread count. Ours twice: rass's fused kernels (native/ops/attention.cc, what training
 * uses) and the chunked composite ops they replace (`withoutNativeOps`).
 * Headlines: engine.attention-native (sd21-base's first level: 5 heads x 64 over 4,096 tokens)
 * and engine.attention-native-tiny (the tiny UNet at a 64x64 latent: batch 2, 2 heads x 16).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../framework/engine/backend.js';
import { memoryEfficientAttention } from '../framework/engine/attention.js';
import { nativeOpsStatus, withoutNativeOps } from '../framework/engine/native-ops.js';
import { Rng } from '../framework/engine/rng.js';
import { packageRoot } from '../framework/paths.js';
import { benchLine, benchThreads, machineLoad } from './_format.js';
import { median } from './_lockstep.js';

/** [B, H, Nq, Nk, d], with the BENCH id it reports under. */
const CASES: { id: string; what: string; shape: [number, number, number, number, number] }[] = [
  { id: 'engine.attention-native', what: 'sd21-base level 1 self-attention', shape: [1, 5, 4096, 4096, 64] },
  { id: 'engine.attention-native-tiny', what: 'tiny UNet self-attention, 64x64 latent', shape: [2, 2, 4096, 4096, 16] },
  { id: 'engine.attention-native-cross', what: 'sd21-base level 1 cross-attention, 77 tokens', shape: [1, 5, 4096, 77, 64] },
];

/** Median seconds of forward + backward of sum(attention(q, k, v) * dout), after one warm-up call. */
function timeOurs([b, h, nq, nk, d]: [number, number, number, number, number], iters: number): number {
  const r = Rng.derive(11, 'bench-attention');
  const t = (n: number) => tf.tensor3d(r.fillNormal(new Float32Array(b * n * h * d)) as Float32Array, [b, n, h * d]);
  const [q, k, v, dout] = [t(nq), t(nk), t(nk), t(nq)];
  const step = () =>
    tf.tidy(() => {
      const g = tf.grads((a: tf.Tensor, bb: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(memoryEfficientAttention(a, bb, c, { heads: h }), dout)))([q, k, v]);
      g.forEach((x) => x.dataSync());
    });
  step();
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    step();
    times.push((performance.now() - t0) / 1000);
  }
  tf.dispose([q, k, v, dout]);
  return median(times);
}

export async function run(args: string[]): Promise<void> {
  const threads = benchThreads(args);
  const ii = args.indexOf('--iters');
  const iters = ii >= 0 ? Number(args[ii + 1]) : 5;
  const choice = await initBackend({ prefer: 'tensorflow', threads, log: null });
  if (choice.name !== 'tensorflow') {
    console.log(`attention bench: needs the native backend (\`npm run setup:native\`); got ${choice.name}`);
    return;
  }
  const ops = nativeOpsStatus();
  console.log(`threads: ${threads} (ours: native TensorFlow intra-/inter-op; peer: torch.set_num_threads / set_num_interop_threads); fused kernels: ${ops.available ? 'loaded' : `unavailable (${ops.detail})`}`);
  const root = packageRoot();
  const venv = execFileSync(join(root, 'scripts/py-venv.sh'), ['engine-native', join(root, 'scripts/bench/engine-native/requirements.txt')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const spec = { threads, iters, cases: CASES.map((c) => c.shape) };
  const peer = JSON.parse(execFileSync(join(venv, 'bin/python'), ['-W', 'ignore', join(root, 'scripts/bench/attention/peer.py'), JSON.stringify(spec)], { encoding: 'utf8' }).trim().split('\n').pop()!) as { step_s: number[]; torch: string };
  const rows = CASES.map((c, i) => ({ ...c, fused: ops.available ? timeOurs(c.shape, iters) : NaN, composite: withoutNativeOps(() => timeOurs(c.shape, iters)), peer: peer.step_s[i] as number }));
  console.log(`\nattention forward + backward, median of ${iters}; PyTorch ${peer.torch} scaled_dot_product_attention`);
  console.log('| shape [B, H, Nq, Nk, d] | what | ours fused ms | ours composite ms | PyTorch ms |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.shape.join(', ')} | ${r.what} | ${(r.fused * 1000).toFixed(1)} | ${(r.composite * 1000).toFixed(1)} | ${(r.peer * 1000).toFixed(1)} |`);
  const { load } = machineLoad(threads);
  for (const r of rows) console.log(benchLine(r.id, r.fused * 1000, 'ms', 'torch-sdpa-cpu', r.peer * 1000, r.peer / r.fused, { threads, peer_threads: threads, load, composite_ms: r.composite * 1000, composite_ratio: r.peer / r.composite }));
}
