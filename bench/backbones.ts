/**
 * `npm run bench -- backbones [--backend auto|wasm|cpu|tensorflow] [--iters N]`: the SD UNet
 * (tiny and a mid-size config) forward and forward+backward (gradients for every
 * parameter, loss mean(y^2)), this project on tfjs vs diffusers on torch CPU, same shapes,
 * measured in the same run. Headline: backbones.unet-train (tiny UNet forward+backward).
 */
import * as tf from '@tensorflow/tfjs-core';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { initBackend, parseBackendName } from '../framework/engine/backend.js';
import { Rng } from '../framework/engine/rng.js';
import { TINY_UNET } from '../registry/backbones/sd/presets.js';
import { UNet2DConditionModel, type UNetConfig } from '../registry/backbones/sd/unet.js';
import { benchLine } from './_format.js';

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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function measureOurs(c: Case): { forward: number; train: number | null } {
  const unet = new UNet2DConditionModel(c.config, 0);
  const r = Rng.derive(0, 'bench');
  const x = tf.tensor4d(r.fillNormal(new Float32Array(c.batch * c.size * c.size * c.config.in_channels)) as Float32Array, [c.batch, c.size, c.size, c.config.in_channels]);
  const ctx = tf.tensor3d(r.fillNormal(new Float32Array(c.batch * c.tokens * c.config.cross_attention_dim)) as Float32Array, [c.batch, c.tokens, c.config.cross_attention_dim]);
  const vars = [...unet.store.params.values()].map((p) => p.variable);
  const canTrain = ['Mean', 'Conv2D', 'Erf', 'Tile', 'BatchMatMul'].every((k) => tf.getGradient(k));
  const fwd: number[] = [];
  const train: number[] = [];
  for (let i = 0; i <= c.iters; i++) {
    let s = performance.now();
    const y = unet.forward(x, 999, ctx).sample;
    y.dataSync();
    y.dispose();
    fwd.push((performance.now() - s) / 1000);
    if (canTrain) {
      s = performance.now();
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(unet.run(x, 999, ctx))) as tf.Scalar, vars);
      for (const g of Object.values(grads)) g.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
      train.push((performance.now() - s) / 1000);
    }
  }
  tf.dispose([x, ctx]);
  unet.dispose();
  return { forward: median(fwd.slice(1)), train: canTrain ? median(train.slice(1)) : null };
}

function measurePeer(cases: Case[]): Map<string, { forward_s: number; train_s: number; threads: number; torch: string }> | null {
  const root = process.cwd();
  const req = join(root, 'scripts/fixtures/backbones/requirements.txt');
  try {
    const venv = execFileSync(join(root, 'scripts/py-venv.sh'), ['backbones', req], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    const out = execFileSync(join(venv, 'bin/python'), [join(root, 'scripts/fixtures/backbones/bench_peer.py'), JSON.stringify(cases)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    const m = new Map<string, { forward_s: number; train_s: number; threads: number; torch: string }>();
    for (const line of out.split('\n').filter(Boolean)) {
      const j = JSON.parse(line) as { name: string; forward_s: number; train_s: number; threads: number; torch: string };
      m.set(j.name, j);
    }
    return m;
  } catch (e) {
    console.log(`peer (diffusers on torch CPU) unavailable: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

export async function run(args: string[]): Promise<void> {
  // default: the engine's chain (native TensorFlow when `npm run setup:native` built it, else wasm)
  const bi = args.indexOf('--backend');
  const backend = bi >= 0 ? parseBackendName(args[bi + 1] ?? '', '--backend') : 'auto';
  const ii = args.indexOf('--iters');
  const iters = ii >= 0 ? Number(args[ii + 1]) : 3;
  await initBackend({ prefer: backend, log: null });
  const cases: Case[] = [
    { name: 'tiny', config: TINY_UNET, batch: 2, size: 16, tokens: 8, iters },
    { name: 'mid', config: MID_UNET, batch: 1, size: 32, tokens: 16, iters: Math.max(1, Math.ceil(iters / 2)) },
  ];
  const ours = new Map(cases.map((c) => [c.name, measureOurs(c)]));
  const peer = measurePeer(cases);
  const f = (s: number | null | undefined) => (s == null ? 'n/a' : `${(s * 1000).toFixed(1)} ms`);
  console.log(`backend: ${tf.getBackend()}; peer: diffusers UNet2DConditionModel on torch CPU${peer ? ` (${[...peer.values()][0]?.torch}, ${[...peer.values()][0]?.threads} threads)` : ''}`);
  console.log('| UNet | pass | ours | diffusers | speed ratio |');
  console.log('|---|---|---|---|---|');
  for (const c of cases) {
    const o = ours.get(c.name) as { forward: number; train: number | null };
    const p = peer?.get(c.name);
    console.log(`| ${c.name} (${c.config.block_out_channels.join('/')}, ${c.batch}x${c.size}x${c.size}) | forward | ${f(o.forward)} | ${f(p?.forward_s)} | ${p ? (p.forward_s / o.forward).toFixed(3) : 'n/a'} |`);
    console.log(`| ${c.name} | forward+backward | ${f(o.train)} | ${f(p?.train_s)} | ${p && o.train ? (p.train_s / o.train).toFixed(3) : 'n/a'} |`);
  }
  if (!ours.get('tiny')?.train) console.log('forward+backward not measured: tfjs gradients are not registered on this backend (engine training kernels pending)');
  const tiny = ours.get('tiny') as { forward: number; train: number | null };
  const pt = peer?.get('tiny');
  console.log(benchLine('backbones.unet-forward', tiny.forward * 1000, 'ms', 'diffusers-torch-cpu', pt ? pt.forward_s * 1000 : NaN, pt ? pt.forward_s / tiny.forward : NaN));
  const train = tiny.train ?? NaN;
  console.log(benchLine('backbones.unet-train', train * 1000, 'ms', 'diffusers-torch-cpu', pt ? pt.train_s * 1000 : NaN, pt ? pt.train_s / train : NaN));
}
