/**
 * `npm run bench -- engine [--seconds S]`: training-speed figures of tfjs's wasm backend with
 * the project's wasm training kernels (framework/engine/wasm-kernels) against the tfjs cpu
 * backend, same shapes, same data, measured in the same run: conv2d forward + backward (dx and
 * dW; dW is the im2col + BatchMatMul kernel this project adds to wasm), the filter gradient
 * alone, and a matmul. The gradients are cross-checked between the backends before timing.
 * Headline: engine.conv-backward.wasm (conv2d fwd+bwd GFLOP/s, wasm vs tfjs-cpu).
 */
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../framework/engine/backend.js';
import { Rng } from '../framework/engine/rng.js';
import { registerWasmTrainingKernels } from '../framework/engine/wasm-kernels/index.js';
import { benchLine } from './_format.js';

const CONV = { n: 2, h: 32, w: 32, ci: 32, co: 32, k: 3 };
const MATMUL = 512;

function data(key: string, n: number): Float32Array {
  return Rng.derive(0, 'bench-engine-wasm', key).fillNormal(new Float32Array(n)) as Float32Array;
}

/** Mean seconds per call over at least `minIters` calls and about `seconds` seconds (after 1 warm-up). */
function time(f: () => void, seconds: number, minIters = 3): number {
  f();
  let iters = 0;
  const t0 = performance.now();
  while (iters < minIters || performance.now() - t0 < seconds * 1000) {
    f();
    iters++;
  }
  return (performance.now() - t0) / 1000 / iters;
}

interface Row { backend: string; op: string; ms: number; gflops: number }

function measure(backend: string, seconds: number): { rows: Row[]; grads: Float32Array[] } {
  const { n, h, w, ci, co, k } = CONV;
  const x = tf.tensor4d(data('x', n * h * w * ci), [n, h, w, ci]);
  const f = tf.tensor4d(data('f', k * k * ci * co), [k, k, ci, co]);
  const r = tf.tensor4d(data('r', n * h * w * co), [n, h, w, co]);
  const a = tf.tensor2d(data('a', MATMUL * MATMUL), [MATMUL, MATMUL]);
  const b = tf.tensor2d(data('b', MATMUL * MATMUL), [MATMUL, MATMUL]);
  const convFlops = 2 * n * h * w * k * k * ci * co; // 'same', stride 1
  const lossGrads = tf.grads((xx: tf.Tensor, ff: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, ff as tf.Tensor4D, 1, 'same'), r)));
  const grads = tf.tidy(() => lossGrads([x, f]).map((g) => g.dataSync() as Float32Array));
  const fwdBwd = time(() => tf.tidy(() => { lossGrads([x, f]).forEach((g) => g.dataSync()); }), seconds);
  const dW = time(() => tf.tidy(() => { tf.conv2d(x, f, 1, 'same'); tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: r }, { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [k, k, ci, co] } as unknown as tf.NamedAttrMap); }), seconds);
  const dWOnly = Math.max(dW - time(() => tf.tidy(() => { tf.conv2d(x, f, 1, 'same').dataSync(); }), seconds), 1e-9);
  const mm = time(() => tf.tidy(() => { tf.matMul(a, b).dataSync(); }), seconds);
  tf.dispose([x, f, r, a, b]);
  return {
    grads,
    rows: [
      { backend, op: `conv2d ${n}x${h}x${w}x${ci}->${co} k${k} fwd+bwd`, ms: fwdBwd * 1e3, gflops: (3 * convFlops) / fwdBwd / 1e9 },
      { backend, op: 'conv2d filter gradient (dW) only', ms: dWOnly * 1e3, gflops: convFlops / dWOnly / 1e9 },
      { backend, op: `matmul ${MATMUL}x${MATMUL}`, ms: mm * 1e3, gflops: (2 * MATMUL ** 3) / mm / 1e9 },
    ],
  };
}

export async function run(args: string[]): Promise<void> {
  const i = args.indexOf('--seconds');
  const seconds = i >= 0 ? Number(args[i + 1]) : 2;
  await useBackend('cpu');
  const cpu = measure('cpu', seconds);
  await useBackend('wasm');
  registerWasmTrainingKernels();
  const wasm = measure('wasm', seconds);
  // Same numbers on both backends before any speed is compared.
  cpu.grads.forEach((g, j) => {
    const wg = wasm.grads[j]!;
    let num = 0;
    let den = 0;
    for (let q = 0; q < g.length; q++) {
      num = Math.max(num, Math.abs(g[q]! - wg[q]!));
      den = Math.max(den, Math.abs(g[q]!));
    }
    if (num / den > 1e-4) throw new Error(`engine-wasm: conv gradient ${j} differs between wasm and cpu (rel ${num / den})`);
  });
  console.log('backend | op                                          |       ms | GFLOP/s');
  for (const r of [...wasm.rows, ...cpu.rows]) {
    console.log(`${r.backend.padEnd(7)} | ${r.op.padEnd(43)} | ${r.ms.toFixed(2).padStart(8)} | ${r.gflops.toFixed(2).padStart(7)}`);
  }
  const ours = wasm.rows[0]!.gflops;
  const peer = cpu.rows[0]!.gflops;
  console.log(benchLine('engine.conv-backward.wasm', ours, 'GFLOP/s', 'tfjs-cpu', peer, ours / peer));
}
