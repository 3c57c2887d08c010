/**
 * `npm run bench -- engine [--seconds S] [--steps N] [--no-wasm-train]`: the compute engine.
 * 1. kernels: conv2d forward+backward and matmul GFLOP/s on wasm vs the tfjs cpu backend
 *    (BENCH engine.conv-backward.wasm);
 * 2. a training step (forward, backward, Adam) of a small conv + attention net from the same
 *    initial weights on wasm and, when `npm run setup:native` built it, native TensorFlow,
 *    against PyTorch 2.13 CPU in the same run (BENCH engine.train.wasm, engine.train.native).
 */
import { run as runKernels } from './_engine-kernels.js';
import { run as runTrain } from './_engine-train.js';

export async function run(args: string[]): Promise<void> {
  await runKernels(args);
  await runTrain(args);
}
