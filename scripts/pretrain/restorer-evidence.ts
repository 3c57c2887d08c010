/**
 * Evidence that models/tiny-shapes is a prior a one-step restorer can start from:
 * OSEDiff-style one-step restoration (VAE encode -> UNet at timestep t with a zero LoRA, i.e.
 * the bare prior -> x0 from the epsilon prediction -> VAE decode) of degraded shapes images,
 * PSNR against the clean image, for the pretrained prior and for a random-weights model of the
 * same architecture, next to the degraded input's own PSNR and the pretrained VAE alone
 * (decode(encode(LQ)), what the restorer approaches as t -> 0).
 *
 *   node dist/scripts/pretrain/restorer-evidence.js [--images 48] [--preset mild] [--backend auto] [--prior DIR]
 *
 * Images: dataset/shapes 64x64 with a seed the prior never saw (its training set used 20240).
 * Prompts: each image's label tags joined by ", " (oracle tags), and the empty prompt.
 */
import * as tf from '@tensorflow/tfjs-core';
import { join, resolve } from 'node:path';
import { initBackend, parseBackendName } from '../../framework/engine/backend.js';
import { packageRoot } from '../../framework/paths.js';
import { Rng } from '../../framework/engine/rng.js';
import { ShapesDataset } from '../../registry/datasets/shapes/shapes.js';
import { plugins as degradationPlugins } from '../../registry/degradations/index.js';
import { buildDegradationFile } from '../../registry/degradations/common/build.js';
import { OneStepRestorer } from '../../registry/backbones/sd/one-step.js';
import { loadClipText, loadTokenizer, loadUNet, loadVae } from '../../registry/backbones/sd/pretrained.js';
import { ClipTextModel } from '../../registry/backbones/sd/clip.js';
import { UNet2DConditionModel } from '../../registry/backbones/sd/unet.js';
import { AutoencoderKL } from '../../registry/backbones/sd/vae.js';
import { LabelMapTagger } from '../../registry/taggers/label-map/plugin.js';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] as string) : dflt;
};
const N = Number(arg('images', '48'));
const PRESET = arg('preset', 'mild');
const TIMESTEPS = [999, 700, 500, 300, 200, 100, 50, 20];

/** Mean per-image PSNR (dB) of images in [0, 1]. */
function psnr01(a: tf.Tensor4D, b: tf.Tensor4D): number {
  return tf.tidy(() => {
    const mse = tf.mean(tf.square(tf.sub(a, b)), [1, 2, 3]);
    return tf.mean(tf.mul(-10 / Math.LN10, tf.log(tf.maximum(mse, 1e-10)))).dataSync()[0] as number;
  });
}

async function main(): Promise<void> {
  const backend = await initBackend({ prefer: parseBackendName(arg('backend', 'auto'), '--backend') });
  const root = resolve(arg('prior', join(packageRoot(), 'models', 'tiny-shapes')));
  const ds = new ShapesDataset({ length: N, height: 64, width: 64, numClasses: 9, maxObjects: 4, seed: 777 });
  const tagger = new LabelMapTagger({ synonyms: {}, minFraction: 0 });
  const samples = await Promise.all(Array.from({ length: N }, (_, i) => ds.get(i)));
  const hq = tf.tensor4d(Float32Array.from(samples.flatMap((s) => Array.from(s.image, (v) => v / 255))), [N, 64, 64, 3]);
  const pipeline = await buildDegradationFile(join(packageRoot(), 'configs/_base_/degradations', `${PRESET}.yaml`), { plugins: degradationPlugins });
  const lq = await pipeline.apply(hq, { rng: samples.map((_, i) => Rng.derive(0, 'degradation', i)) });
  const prompts = samples.map((s) => tagger.tagsFor(s, ds.classNames, ds.ignoreIndex).join(', '));

  const pre = { vae: loadVae(root), unet: loadUNet(root), clip: loadClipText(root) };
  pre.clip.tokenizer = loadTokenizer(root);
  // same architecture, random init (the `tiny` preset's situation)
  const rnd = { vae: new AutoencoderKL(pre.vae.config, 1), unet: new UNet2DConditionModel(pre.unet.config, 2), clip: new ClipTextModel(pre.clip.config, 3) };
  rnd.clip.tokenizer = pre.clip.tokenizer;

  const toPm1 = (x: tf.Tensor4D) => tf.sub(tf.mul(x, 2), 1) as tf.Tensor4D;
  const to01 = (x: tf.Tensor4D) => tf.div(tf.add(x, 1), 2) as tf.Tensor4D;
  const lqPsnr = psnr01(lq, hq);
  const vaeOnly = (vae: AutoencoderKL) =>
    tf.tidy(() => psnr01(to01(tf.clipByValue(vae.runDecode(vae.runEncode(toPm1(lq)).mean), -1, 1) as tf.Tensor4D), hq));
  console.log(`backend ${backend.name}, ${N} shapes images 64x64 (seed 777), degradation ${PRESET}`);
  console.log(`LQ input PSNR: ${lqPsnr.toFixed(2)} dB`);
  console.log(`VAE only decode(encode(LQ)): pretrained ${vaeOnly(pre.vae).toFixed(2)} dB, random ${vaeOnly(rnd.vae).toFixed(2)} dB`);
  console.log('one-step restorer, zero LoRA (PSNR dB vs HQ; delta vs LQ in parentheses):');
  console.log(['t', 'pretrained+tags', 'pretrained+empty', 'random+tags', 'random+empty'].map((s) => s.padEnd(18)).join(''));
  for (const t of TIMESTEPS) {
    const row: string[] = [String(t).padEnd(18)];
    for (const m of [pre, rnd]) {
      for (const texts of [prompts, prompts.map(() => '')]) {
        const ctx = m.clip.encodeText(texts);
        let sum = 0;
        for (let i = 0; i < N; i += 16) {
          const n = Math.min(16, N - i);
          const v = tf.tidy(() => {
            const part = tf.slice(lq, [i, 0, 0, 0], [n, -1, -1, -1]) as tf.Tensor4D;
            const c = tf.slice(ctx, [i, 0, 0], [n, -1, -1]) as tf.Tensor3D;
            const rr = new OneStepRestorer(m.vae, m.unet, c, t);
            return psnr01(to01(rr.run(toPm1(part))), tf.slice(hq, [i, 0, 0, 0], [n, -1, -1, -1]) as tf.Tensor4D);
          });
          sum += v * n;
        }
        ctx.dispose();
        const p = sum / N;
        row.push(`${p.toFixed(2)} (${p - lqPsnr >= 0 ? '+' : ''}${(p - lqPsnr).toFixed(2)})`.padEnd(18));
      }
    }
    console.log(row.join(''));
  }
  tf.dispose([hq, lq]);
  for (const m of [pre, rnd]) [m.vae, m.unet, m.clip].forEach((x) => x.dispose());
}

await main();
