/**
 * `npm run bench -- heads [--backend auto|tensorflow|wasm|cpu] [--iters N]`: Mask2Former head
 * (MSDeformAttn pixel decoder + masked-attention decoder) forward, and forward+backward through
 * the full criterion (Hungarian matching, point-sampled BCE/dice, deep supervision), this project
 * on tfjs vs the same architecture and criterion in torch on CPU (scripts/fixtures/heads/bench_peer.py),
 * same shapes, measured in the same run. Headline: heads.mask2former-train (compiled on the
 * native backend, the eager figure beside it).
 */
import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { initBackend, parseBackendName } from '../framework/engine/backend.js';
import { Rng } from '../framework/engine/rng.js';
import { compileStep, hostPlan, nativeCompileSupport, type CompileMode } from '../framework/engine/compile.js';
import { flattenHead, unflattenHead } from '../experiments/rass/step.js';
import { Mask2FormerHead, MASK2FORMER_DEFAULTS, type Mask2FormerOptions } from '../registry/heads/mask2former/mask2former.js';
import { MASK2FORMER_LOSS_DEFAULTS, MaskClassificationLoss } from '../registry/losses/mask2former/mask-criterion.js';
import { benchLine, benchThreads, machineLoad } from './_format.js';
import { alternate, startPythonPeer, type LockstepPeer } from './_lockstep.js';

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

/** Eager forward and forward+backward, each alternating with the peer's (bench/_lockstep.ts). */
async function measureOurs(iters: number, peer: LockstepPeer | null): Promise<{ forward: number; train: number | null; peerForward: number | null; peerTrain: number | null }> {
  const { head, levels, targets, loss, vars } = setup();
  // gradient functions, and the kernels they call on this backend (gather's gradient needs UnsortedSegmentSum)
  const canTrain =
    ['Conv2D', 'GatherV2', 'Softmax', 'LogSoftmax', 'ResizeBilinear', 'Tile', 'Floor', 'Cast', 'ClipByValue', 'Sum', 'Mean', 'BatchMatMul'].every((k) => tf.getGradient(k)) &&
    ['UnsortedSegmentSum', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'ResizeBilinearGrad'].every((k) => tf.getKernel(k, tf.getBackend()));
  const fwd = await alternate(
    iters + 1,
    1,
    () =>
      tf.tidy(() => {
        const out = head.forward(levels);
        if (out.kind === 'mask-classification') out.final.maskLogits.dataSync();
      }),
    peer,
    'forward',
  );
  const train = canTrain
    ? await alternate(
        iters + 1,
        1,
        (i) => {
          const { value, grads } = tf.variableGrads(() => loss.compute(head.forward(levels), targets, Rng.derive(0, 'bench-step', i)).total, vars);
          for (const g of Object.values(grads)) g.dataSync();
          tf.dispose([value, ...Object.values(grads)]);
        },
        peer,
        'train',
      )
    : null;
  tf.dispose(levels.map((l) => l.features));
  head.dispose();
  return { forward: fwd.ours, train: train?.ours ?? null, peerForward: fwd.peer, peerTrain: train?.peer ?? null };
}

/**
 * The same forward+backward compiled (native backend, issue #21), the way experiment/rass runs
 * it: the step hands the head's outputs to `hostPlan`, where the criterion's `prepare` does the
 * host work (Hungarian matching, uncertainty points); compiled, the step is two TensorFlow
 * functions split there (forward; then computePrepared + gradients on the forward's
 * activations). Timed: the whole step, after untimed warm-up calls (the recordings). Null
 * where compiled steps are unavailable.
 */
async function measureCompiled(iters: number, peer: LockstepPeer | null, mode: CompileMode = 'auto'): Promise<{ train: number; peerTrain: number | null; state: string; xla?: string } | null> {
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
  const timed = await alternate(iters, 0, (i) => once(3 + i), peer, 'train');
  const { state, xla } = step.status();
  step.dispose();
  tf.dispose(levels.map((l) => l.features));
  head.dispose();
  return { train: timed.ours, peerTrain: timed.peer, state, ...(xla ? { xla } : {}) };
}

/** The torch peer, serving forward passes and training steps on request; null where it cannot start. */
async function startPeer(threads: number): Promise<{ peer: LockstepPeer; threads: number; torch: string } | null> {
  const dir = join(process.cwd(), 'scripts/fixtures/heads');
  const arg = JSON.stringify({ config: CONFIG, batch: BATCH, size: SIZE, points: POINTS, threads });
  const s = await startPythonPeer('torch CPU', { venv: 'heads', requirements: join(dir, 'requirements.txt'), script: join(dir, 'bench_peer.py'), args: [arg] });
  return s && { peer: s.peer, threads: Number(s.info.threads), torch: String(s.info.torch) };
}

export async function run(args: string[]): Promise<void> {
  const bi = args.indexOf('--backend');
  // default: the engine's chain (native TensorFlow, then wasm, then cpu)
  const backend = parseBackendName(bi >= 0 ? String(args[bi + 1]) : 'auto', '--backend');
  const ii = args.indexOf('--iters');
  const iters = ii >= 0 ? Number(args[ii + 1]) : 10;
  const threads = benchThreads(args);
  const load = machineLoad(threads);
  console.log(`threads: ${threads} on both sides; load average ${load.load.toFixed(2)}`);
  if (load.warning) console.log(load.warning);
  await initBackend({ prefer: backend, threads });
  // each of our measurements alternates with the peer's, request by request (bench/_lockstep.ts)
  const started = await startPeer(threads);
  const peerSide = started?.peer ?? null;
  let ours: Awaited<ReturnType<typeof measureOurs>>;
  let compiled: Awaited<ReturnType<typeof measureCompiled>>;
  let xla: Awaited<ReturnType<typeof measureCompiled>> = null;
  try {
    ours = await measureOurs(iters, peerSide);
    compiled = await measureCompiled(iters, peerSide);
    if (compiled?.state === 'compiled') xla = await measureCompiled(iters, peerSide, 'xla');
  } finally {
    await peerSide?.close();
  }
  const extra = { threads, load: Math.max(load.load, machineLoad(threads).load).toFixed(2) };
  const f = (s: number | null | undefined) => (s == null ? 'n/a' : `${(s * 1000).toFixed(1)} ms`);
  const ratio = (peerS: number | null | undefined, oursS: number | null | undefined) => (peerS != null && oursS ? (peerS / oursS).toFixed(3) : 'n/a');
  const desc = `hidden ${CONFIG.hidden}, ${CONFIG.queries} queries, ${CONFIG.decoderLayers} decoder / ${CONFIG.pixelDecoderLayers} pixel-decoder layers, ${BATCH}x${SIZE}x${SIZE}, ${POINTS} points`;
  console.log(`backend: ${tf.getBackend()}; peer: same Mask2Former head + criterion in torch CPU${started ? ` (${started.torch}, ${started.threads} threads)` : ''}; each row's torch time is from the steps alternating with ours`);
  console.log('| Mask2Former | pass | ours | torch | speed ratio |');
  console.log('|---|---|---|---|---|');
  console.log(`| ${desc} | forward | ${f(ours.forward)} | ${f(ours.peerForward)} | ${ratio(ours.peerForward, ours.forward)} |`);
  console.log(`| | forward+backward (with criterion) | ${f(ours.train)} | ${f(ours.peerTrain)} | ${ratio(ours.peerTrain, ours.train)} |`);
  if (compiled) console.log(`| | forward+backward, compiled (two functions split at the host plan; ${compiled.state}) | ${f(compiled.train)} | ${f(compiled.peerTrain)} | ${ratio(compiled.peerTrain, compiled.train)} |`);
  if (xla) console.log(`| | forward+backward, compiled through XLA (compile: xla; XLA ${xla.xla ?? '?'}) | ${f(xla.train)} | ${f(xla.peerTrain)} | ${ratio(xla.peerTrain, xla.train)} |`);
  if (!ours.train) console.log(`forward+backward not measured: gradient functions or their kernels (UnsortedSegmentSum, Conv2DBackprop*, ResizeBilinearGrad) are missing on ${tf.getBackend()}`);
  const line = (id: string, oursS: number, peerS: number | null, more: Record<string, string | number>) => benchLine(id, oursS * 1000, 'ms', 'torch-cpu', peerS != null ? peerS * 1000 : NaN, peerS != null ? peerS / oursS : NaN, more);
  console.log(line('heads.mask2former-forward', ours.forward, ours.peerForward, extra));
  // the headline is the step as training runs it: compiled where the backend compiles, else eager
  const useCompiled = compiled?.state === 'compiled';
  const trainExtra = { ...extra, compile: compiled?.state ?? 'unavailable', eager_ms: ours.train ? (ours.train * 1000).toFixed(1) : 'n/a' };
  console.log(line('heads.mask2former-train', useCompiled ? compiled!.train : (ours.train ?? NaN), useCompiled ? compiled!.peerTrain : ours.peerTrain, trainExtra));
  if (xla) console.log(line('heads.mask2former-train-xla', xla.train, xla.peerTrain, { ...trainExtra, compile: `xla:${xla.xla ?? '?'}` }));
}
