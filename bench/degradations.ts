/**
 * `npm run bench -- degradations [--n N] [--size S] [--reps R] [--backend auto|tensorflow|wasm|cpu] [--threads N]`:
 * the rass-full degradation pipeline (Real-ESRGAN second order, scale 1) on SxS images, images/s
 * on the backend training uses (auto: native TensorFlow when built, the on-the-fly LQ of SCR/RASS
 * runs there), against a PyTorch CPU implementation of the same pipeline
 * (scripts/bench/degradations/peer.py) measured in the same run with the same thread count;
 * plus per-op times on both sides. `degradations.pipeline` is the native figure;
 * `--backend wasm` gives `degradations.pipeline.wasm`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, parseBackendName } from '../framework/engine/backend.js';
import { Rng } from '../framework/engine/rng.js';
import { benchLine, benchThreads, machineLoad } from './_format.js';
import { plugins } from '../registry/degradations/index.js';
import { buildDegradationFile } from '../registry/degradations/common/build.js';
import { filter2d } from '../registry/degradations/common/filter2d.js';
import { gaussianKernel } from '../registry/degradations/kernels/kernels.js';
import { resize } from '../registry/degradations/resize/resize.js';
import { diffJpeg } from '../registry/degradations/jpeg/diffjpeg.js';
import { addPoissonNoise, rngSampler } from '../registry/degradations/noise/noise.js';
import { gaussianNoisyImage } from '../registry/degradations/noise/gaussian-split.js';

function findRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      readFileSync(join(d, 'package.json'));
      return d;
    } catch {
      d = dirname(d);
    }
  }
  throw new Error('repository root not found');
}

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

/**
 * Steady-state ms per call. Three warm-up calls, not one: the JS loops (noise, DiffJPEG), on the
 * main thread and in the helper thread that starts on the first call, reach V8's optimising
 * tier only after a few calls (DiffJPEG at 512x512: 139, 68, 24, 24, 19 ms, then 14-19), and a
 * training run makes thousands of calls. The peer's PyTorch kernels need one.
 */
const WARM_UP = 3;

async function timeMs(fn: () => unknown | Promise<unknown>, reps: number): Promise<number> {
  for (let i = 0; i < WARM_UP; i++) await fn();
  const t = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return (performance.now() - t) / reps;
}

export async function run(args: string[]): Promise<void> {
  // 24 images: each draws its own stage parameters (Poisson or Gaussian, resize scales, kernel
  // sizes), and per-image times differ 10x, so 8 left the mean to chance on both sides
  const n = arg(args, 'n', 24);
  const size = arg(args, 'size', 512);
  const reps = arg(args, 'reps', 5);
  const root = findRoot();
  const bi = args.indexOf('--backend');
  const threads = benchThreads(args);
  const before = machineLoad(threads);
  const chosen = await initBackend({ prefer: parseBackendName(bi >= 0 ? String(args[bi + 1]) : 'auto', '--backend'), threads, log: null });
  const backend = tf.getBackend();
  if (before.warning) console.log(before.warning);

  const r = Rng.derive(0, 'bench-images');
  const imgs = Array.from({ length: n }, () => tf.tensor4d(r.fillUniform(new Float32Array(size * size * 3)) as Float32Array, [1, size, size, 3]));
  const x = imgs[0];
  const hw = size * size;
  const data = x.dataSync() as Float32Array;
  const k21 = gaussianKernel(21, 2, 2, 0, true);
  const ops: Record<string, number> = {
    filter2d_k21: await timeMs(() => tf.dispose(filter2d(x, k21)), reps),
    'resize_bicubic_0.5': await timeMs(() => tf.dispose(resize(x, { scaleFactor: 0.5 }, 'bicubic')), reps),
    'resize_bilinear_up_1.3': await timeMs(() => tf.dispose(resize(x, { scaleFactor: 1.3 }, 'bilinear')), reps),
    // the noise stage's own paths (the Gaussian one on two threads where host work may use them)
    noise_gaussian: await timeMs(() => gaussianNoisyImage(data, hw, 3, 10, false, true, false, r.fork('gaussian')), reps),
    noise_poisson: await timeMs(() => addPoissonNoise(data, hw, 3, 1, false, true, false, rngSampler(r.fork('poisson')).poisson), reps),
    diffjpeg: await timeMs(() => tf.dispose(diffJpeg(x, 50)), reps),
  };

  const pipe = await buildDegradationFile(join(root, 'configs/_base_/degradations/rass-full.yaml'), { plugins });
  const once = async (img: tf.Tensor4D, i: number) => {
    const y = await pipe.apply(img, { rng: [Rng.derive(1, 'degradation', i)] });
    y.dataSync();
    if (y !== img) y.dispose();
  };
  for (let i = 0; i < WARM_UP; i++) await once(imgs[i], 1000 + i);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await once(imgs[i], i);
  const ours = n / ((performance.now() - t0) / 1000);
  tf.dispose(imgs);

  const req = join(root, 'scripts/bench/degradations/requirements.txt');
  const venv = execFileSync(join(root, 'scripts/py-venv.sh'), ['degradations', req], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const peerOut = execFileSync(join(venv, 'bin/python'), ['-W', 'ignore', join(root, 'scripts/bench/degradations/peer.py'), JSON.stringify({ n, size, reps, threads })], {
    encoding: 'utf8', maxBuffer: 1 << 20, stdio: ['ignore', 'pipe', 'ignore'],
  });
  const peer = JSON.parse(peerOut.trim().split('\n').pop() as string) as { images_per_s: number; ops_ms: Record<string, number>; threads: number; torch: string };

  // wasm in Node is single-threaded whatever --threads says (tfjs disables its threaded build there)
  const ourThreads = backend === 'tensorflow' ? threads : 1;
  console.log(`degradations: ${n} images ${size}x${size}, tfjs ${backend} (${chosen.name}, ${ourThreads} thread(s)) vs torch ${peer.torch} CPU (${peer.threads} threads); load average ${before.load.toFixed(2)}`);
  console.log(['op', 'ours ms', 'torch ms', 'ratio (torch/ours)'].join('\t'));
  for (const [k, v] of Object.entries(ops)) {
    const p = peer.ops_ms[k];
    console.log([k, v.toFixed(1), p?.toFixed(1) ?? '-', p ? (p / v).toFixed(2) : '-'].join('\t'));
  }
  console.log(['pipeline (images/s)', ours.toFixed(2), peer.images_per_s.toFixed(2), (ours / peer.images_per_s).toFixed(2)].join('\t'));
  const id = backend === 'tensorflow' ? 'degradations.pipeline' : `degradations.pipeline.${backend}`;
  console.log(benchLine(id, ours, 'images/s', 'torch-cpu', peer.images_per_s, ours / peer.images_per_s, { threads: ourThreads, peer_threads: peer.threads, backend, load: machineLoad(threads).load }));
}
