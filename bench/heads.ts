/**
 * `npm run bench -- heads [--backend auto|tensorflow|wasm|cpu] [--iters N]`: Mask2Former head
 * (MSDeformAttn pixel decoder + masked-attention decoder) forward, and forward+backward through
 * the full criterion (Hungarian matching, point-sampled BCE/dice, deep supervision), this project
 * on tfjs vs the same architecture and criterion in torch on CPU (scripts/fixtures/heads/bench_peer.py),
 * same shapes, measured in the same run. Headline: heads.mask2former-train (compiled on the
 * native backend, the eager figure beside it).
 */
import * as tf from '@tensorflow/tfjs-core';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { initBackend, parseBackendName } from '../framework/engine/backend.js';
import { Rng } from '../framework/engine/rng.js';
import { compileStep, hostPlan, nativeCompileSupport, type CompileMode } from '../framework/engine/compile.js';
import { flattenHead, unflattenHead } from '../experiments/rass/step.js';
import { Mask2FormerHead, MASK2FORMER_DEFAULTS, type Mask2FormerOptions } from '../registry/heads/mask2former/mask2former.js';
import { MASK2FORMER_LOSS_DEFAULTS, MaskClassificationLoss } from '../registry/losses/mask2former/mask-criterion.js';
import { benchLine, benchThreads, machineLoad } from './_format.js';

const CONFIG: Mask2FormerOptions = {
  ...MASK2FORMER_DEFAULTS,
  numClasses: 9,
  inChannels: [32, 64, 128, 256],
  inStrides: [4, 8, 16, 32],
  hidden: 64,
  queries: 20,
  decoderLayers: 3,
  heads: 4,
  ffn: 128,
  pixelDecoderLayers: 2,
  pixelDecoderHeads: 4,
  pixelDecoderPoints: 4,
  pixelDecoderFfn: 128,
  maskDim: 64,
  groups: 8,
};
const BATCH = 1;
const SIZE = 128;
const POINTS = 1024;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function setup() {
  const head = new Mask2FormerHead(CONFIG, 0);
  const r = Rng.derive(0, 'bench-heads');
  const levels = [4, 8, 16, 32].map((s, i) => {
    const shape: [number, number, number, number] = [BATCH, SIZE / s, SIZE / s, CONFIG.inChannels[i]];
    return { stride: s, features: tf.tensor4d(r.fillNormal(new Float32Array(shape.reduce((a, b) => a * b))) as Float32Array, shape) };
  });
  // 8x8-pixel blocks of random classes, as the peer builds them
  const labels = new Uint8Array(BATCH * SIZE * SIZE);
  const blocks = Array.from({ length: (SIZE / 8) ** 2 }, () => r.int(0, CONFIG.numClasses - 1));
  for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) labels[y * SIZE + x] = blocks[Math.floor(y / 8) * (SIZE / 8) + Math.floor(x / 8)];
  const targets = { labels, batch: BATCH, height: SIZE, width: SIZE, ignoreIndex: 255 };
  const loss = new MaskClassificationLoss({ ...MASK2FORMER_LOSS_DEFAULTS, numClasses: CONFIG.numClasses, numPoints: POINTS });
  const vars = [...head.params.values()];
  return { head, levels, targets, loss, vars };
}

function measureOurs(iters: number): { forward: number; train: number | null } {
  const { head, levels, targets, loss, vars } = setup();
  // gradient functions, and the kernels they call on this backend (gather's gradient needs UnsortedSegmentSum)
  const canTrain =
    ['Conv2D', 'GatherV2', 'Softmax', 'LogSoftmax', 'ResizeBilinear', 'Tile', 'Floor', 'Cast', 'ClipByValue', 'Sum', 'Mean', 'BatchMatMul'].every((k) => tf.getGradient(k)) &&
    ['UnsortedSegmentSum', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'ResizeBilinearGrad'].every((k) => tf.getKernel(k, tf.getBackend()));
  const fwd: number[] = [];
  const train: number[] = [];
  for (let i = 0; i <= iters; i++) {
    let s = performance.now();
    tf.tidy(() => {
      const out = head.forward(levels);
      if (out.kind === 'mask-classification') out.final.maskLogits.dataSync();
    });
    fwd.push((performance.now() - s) / 1000);
    if (canTrain) {
      s = performance.now();
      const { value, grads } = tf.variableGrads(() => loss.compute(head.forward(levels), targets, Rng.derive(0, 'bench-step', i)).total, vars);
      for (const g of Object.values(grads)) g.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
      train.push((performance.now() - s) / 1000);
    }
  }
  tf.dispose(levels.map((l) => l.features));
  head.dispose();
  return { forward: median(fwd.slice(1)), train: canTrain ? median(train.slice(1)) : null };
}

/**
 * The same forward+backward compiled (native backend, issue #21), the way experiment/rass runs
 * it: the step hands the head's outputs to `hostPlan`, where the criterion's `prepare` does the
 * host work (Hungarian matching, uncertainty points); compiled, the step is two TensorFlow
 * functions split there (forward; then computePrepared + gradients on the forward's
 * activations). Timed: the whole step, after untimed warm-up calls (the recordings). Null
 * where compiled steps are unavailable.
 */
function measureCompiled(iters: number, mode: CompileMode = 'auto'): { train: number; state: string; xla?: string } | null {
  if (!nativeCompileSupport().ok) return null;
  const { head, levels, targets, loss, vars } = setup();
  const named = Object.fromEntries([...head.params].map(([k, v]) => [k, v]));
  const levelInputs = Object.fromEntries(levels.map((l, i) => [`l${i}`, l.features]));
  const feats = (inputs: Record<string, tf.Tensor>) => levels.map((l, i) => ({ stride: l.stride, features: inputs[`l${i}`] as tf.Tensor4D }));
  const byVar = new Map(Object.entries(named).map(([k, v]) => [v.name, k]));
  const step = compileStep(
    (inputs: Record<string, tf.Tensor>) => {
      const { value, grads } = tf.variableGrads(() => {
        const out = head.forward(feats(inputs));
        return loss.computePrepared(out, hostPlan(flattenHead(out))).total;
      }, vars);
      const out: Record<string, tf.Tensor> = { loss: value };
      for (const [vn, g] of Object.entries(grads)) out[`grad:${byVar.get(vn)}`] = g;
      return out;
    },
    { name: 'bench-heads-train', mode, log: process.env.RASS_BENCH_LOG ? (l: string) => console.log(l) : () => {} },
  );
  const once = (i: number) => {
    const out = step.call(levelInputs, (flat) => loss.prepare(unflattenHead(flat), targets, Rng.derive(0, 'bench-step', i)));
    for (const t of Object.values(out)) t.dataSync();
    tf.dispose(Object.values(out));
  };
  for (let i = 0; i < 3; i++) once(i); // recordings and compile (XLA's too), untimed
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const s = performance.now();
    once(3 + i);
    times.push((performance.now() - s) / 1000);
  }
  const { state, xla } = step.status();
  step.dispose();
  tf.dispose(levels.map((l) => l.features));
  head.dispose();
  return { train: median(times), state, ...(xla ? { xla } : {}) };
}

function measurePeer(iters: number, threads: number): { forward_s: number; train_s: number; threads: number; torch: string } | null {
  const root = process.cwd();
  const dir = join(root, 'scripts/fixtures/heads');
  try {
    const venv = execFileSync(join(root, 'scripts/py-venv.sh'), ['heads', join(dir, 'requirements.txt')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    const arg = JSON.stringify({ config: CONFIG, batch: BATCH, size: SIZE, iters, points: POINTS, threads });
    const out = execFileSync(join(venv, 'bin/python'), [join(dir, 'bench_peer.py'), arg], { encoding: 'utf8', cwd: dir, maxBuffer: 1 << 20 });
    return JSON.parse(out.trim().split('\n').pop() as string) as { forward_s: number; train_s: number; threads: number; torch: string };
  } catch (e) {
    console.log(`peer (torch CPU) unavailable: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

export async function run(args: string[]): Promise<void> {
  const bi = args.indexOf('--backend');
  // default: the engine's chain (native TensorFlow, then wasm, then cpu)
  const backend = parseBackendName(bi >= 0 ? String(args[bi + 1]) : 'auto', '--backend');
  const ii = args.indexOf('--iters');
  const iters = ii >= 0 ? Number(args[ii + 1]) : 3;
  const threads = benchThreads(args);
  const load = machineLoad(threads);
  console.log(`threads: ${threads} on both sides; load average ${load.load.toFixed(2)}`);
  if (load.warning) console.log(load.warning);
  await initBackend({ prefer: backend, threads });
  const ours = measureOurs(iters);
  const compiled = measureCompiled(iters);
  const xla = compiled?.state === 'compiled' ? measureCompiled(iters, 'xla') : null;
  const peer = measurePeer(iters, threads);
  const extra = { threads, load: Math.max(load.load, machineLoad(threads).load).toFixed(2) };
  const f = (s: number | null | undefined) => (s == null ? 'n/a' : `${(s * 1000).toFixed(1)} ms`);
  const desc = `hidden ${CONFIG.hidden}, ${CONFIG.queries} queries, ${CONFIG.decoderLayers} decoder / ${CONFIG.pixelDecoderLayers} pixel-decoder layers, ${BATCH}x${SIZE}x${SIZE}, ${POINTS} points`;
  console.log(`backend: ${tf.getBackend()}; peer: same Mask2Former head + criterion in torch CPU${peer ? ` (${peer.torch}, ${peer.threads} threads)` : ''}`);
  console.log('| Mask2Former | pass | ours | torch | speed ratio |');
  console.log('|---|---|---|---|---|');
  console.log(`| ${desc} | forward | ${f(ours.forward)} | ${f(peer?.forward_s)} | ${peer ? (peer.forward_s / ours.forward).toFixed(3) : 'n/a'} |`);
  console.log(`| | forward+backward (with criterion) | ${f(ours.train)} | ${f(peer?.train_s)} | ${peer && ours.train ? (peer.train_s / ours.train).toFixed(3) : 'n/a'} |`);
  if (compiled) console.log(`| | forward+backward, compiled (two functions split at the host plan; ${compiled.state}) | ${f(compiled.train)} | ${f(peer?.train_s)} | ${peer ? (peer.train_s / compiled.train).toFixed(3) : 'n/a'} |`);
  if (xla) console.log(`| | forward+backward, compiled through XLA (compile: xla; XLA ${xla.xla ?? '?'}) | ${f(xla.train)} | ${f(peer?.train_s)} | ${peer ? (peer.train_s / xla.train).toFixed(3) : 'n/a'} |`);
  if (!ours.train) console.log(`forward+backward not measured: gradient functions or their kernels (UnsortedSegmentSum, Conv2DBackprop*, ResizeBilinearGrad) are missing on ${tf.getBackend()}`);
  console.log(benchLine('heads.mask2former-forward', ours.forward * 1000, 'ms', 'torch-cpu', peer ? peer.forward_s * 1000 : NaN, peer ? peer.forward_s / ours.forward : NaN, extra));
  // the headline is the step as training runs it: compiled where the backend compiles, else eager
  const train = compiled?.state === 'compiled' ? compiled.train : (ours.train ?? NaN);
  const trainExtra = { ...extra, compile: compiled?.state ?? 'unavailable', eager_ms: ours.train ? (ours.train * 1000).toFixed(1) : 'n/a' };
  console.log(benchLine('heads.mask2former-train', train * 1000, 'ms', 'torch-cpu', peer ? peer.train_s * 1000 : NaN, peer ? peer.train_s / train : NaN, trainExtra));
  if (xla) console.log(benchLine('heads.mask2former-train-xla', xla.train * 1000, 'ms', 'torch-cpu', peer ? peer.train_s * 1000 : NaN, peer ? peer.train_s / xla.train : NaN, { ...trainExtra, compile: `xla:${xla.xla ?? '?'}` }));
}
