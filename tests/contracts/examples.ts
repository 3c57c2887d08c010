/**
 * The contract suites' table: for every built-in plugin (`kind/name`), the smallest options that
 * build it, and how to exercise it on a fixed input (`run`, returning plain numbers/strings so two
 * builds can be compared with deepEqual). `run` disposes every tensor it creates (the suites check
 * the live tensor count stays flat over repeated calls). The table is the gate for new plugins:
 * `coverage.test.ts` fails for a registered plugin with no entry here, so none skips its kind's suite.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng, type AnyPlugin, type ParameterHolder } from '../../framework/api.js';
import type { Adapter } from '../../framework/contracts/adapter.js';
import type { SegDataset, SegSample } from '../../framework/contracts/dataset.js';
import type { Degradation } from '../../framework/contracts/degradation.js';
import type { HeadOutput, SegHead } from '../../framework/contracts/head.js';
import type { AttentionLoss, ImageLoss, LossResult, SegLoss } from '../../framework/contracts/loss.js';
import type { Metric, MetricBatch } from '../../framework/contracts/metric.js';
import type { Tagger } from '../../framework/contracts/tagger.js';
import { UNet2DConditionModel, type UNetConfig } from '../../registry/backbones/sd/unet.js';
import { experimentsPackage } from '../../experiments/index.js';
import { registryPackage } from '../../registry/index.js';
import type { Fixtures } from './fixtures.js';

/** Kinds with a contract suite (experiments are whole runs; tracker and executor get their own). */
export const CONTRACT_KINDS = ['dataset', 'degradation', 'metric', 'loss', 'head', 'backbone', 'adapter', 'tagger'] as const;

/** The plugins the suites run: the built-in registry plus the experiments' component plugins (loss/toy-cross-entropy). */
export function contractPlugins(): AnyPlugin[] {
  return [...registryPackage.plugins, ...experimentsPackage.plugins].filter((p) => (CONTRACT_KINDS as readonly string[]).includes(p.kind));
}

export interface Example {
  /** Options of the minimal node (without `type`); only what has no default, plus what keeps it small. */
  options(fx: Fixtures): Record<string, unknown>;
  /**
   * Exercise a built value on a fixed input; the result must depend only on `seed` (the build's
   * seed; degradations draw from a stream derived from it, as the runner derives theirs).
   */
  run(value: unknown, fx: Fixtures, seed: number): Promise<unknown>;
  /** The result must change with the seed (random initialisation or random draws), not only stay equal for one seed. */
  seeded?: boolean;
  /** Release what the build holds (variables of a head, a backbone, an adapter). */
  dispose?(value: unknown): void;
  /** Why disposing does not yet free everything the build allocated (a known leak, reported); skips only that check. */
  disposeLeak?: string;
}

/** Deterministic test inputs: uniform [lo, hi) values from a fixed stream (independent of the build seed). */
export function fixedUniform(n: number, key: string, lo = 0, hi = 1): Float32Array {
  return Rng.derive(1234, 'contract-input', key).fillUniform(new Float32Array(n), lo, hi) as Float32Array;
}

const numbers = (t: tf.Tensor): number[] => Array.from(t.dataSync());

/** A loss result as plain numbers; tensors disposed once even where `total` is also a term. */
function lossValues(r: LossResult): Record<string, number> {
  const out: Record<string, number> = { total: r.total.dataSync()[0] };
  for (const [k, v] of Object.entries(r.terms)) out[k] = v.dataSync()[0];
  tf.dispose([...new Set([r.total, ...Object.values(r.terms)])]);
  return out;
}

// ---- kind probes ------------------------------------------------------------------------------

async function runDataset(value: unknown): Promise<unknown> {
  const d = value as SegDataset;
  const s = await d.get(0);
  return { length: d.length, id: s.id, size: [s.height, s.width], image: Array.from(s.image), label: s.label ? Array.from(s.label) : null, tags: s.tags, lq: s.lq ? Array.from(s.lq.image) : null };
}

async function runDegradation(value: unknown, _fx: Fixtures, seed: number): Promise<unknown> {
  const d = value as Degradation;
  const x = tf.tensor4d(fixedUniform(16 * 16 * 3, 'degradation'), [1, 16, 16, 3]);
  // A fresh stream per call: the contract says the result depends only on (seed, sample index, config).
  const out = await d.apply(x, { rng: [Rng.derive(seed, 'degradation', 0)] });
  const data = { shape: out.shape, data: numbers(out) };
  if (out !== x) out.dispose();
  x.dispose();
  return data;
}

function runMetric(batch: () => MetricBatch) {
  return async (value: unknown): Promise<unknown> => {
    const m = value as Metric;
    m.reset();
    m.update(batch());
    return m.compute().scalars;
  };
}

const image = (h: number, w: number, key: string) => ({ data: Array.from(fixedUniform(h * w * 3, key, 0, 255), Math.round), height: h, width: w, channels: 3 });
const restorationBatch = (h: number, w: number) => () => ({ ids: ['a'], restored: [image(h, w, 'restored')], reference: [image(h, w, 'reference')] });
const segLabel = (key: string) => ({ data: Array.from(fixedUniform(64, key, 0, 3), Math.floor), height: 8, width: 8 });
const segBatch = () => ({ ids: ['a'], segPred: [segLabel('pred')], segGt: [segLabel('gt')] });

/** Run a loss in a tidy scope, keeping only its total and terms. */
function tidyLoss(fn: () => LossResult): LossResult {
  return tf.tidy(() => {
    const r = fn();
    return { total: r.total, terms: { ...r.terms } };
  }) as LossResult;
}

/** Losses run inside the caller's tf.tidy (the training step's gradient scope), so the probes do too. */
function runImageLoss(value: unknown): Promise<unknown> {
  const l = value as ImageLoss;
  const p = tf.tensor4d(fixedUniform(32 * 32 * 3, 'pred'), [1, 32, 32, 3]);
  const t = tf.tensor4d(fixedUniform(32 * 32 * 3, 'target'), [1, 32, 32, 3]);
  const v = lossValues(tidyLoss(() => l.compute(p, t)));
  tf.dispose([p, t]);
  return Promise.resolve(v);
}

const SEG_TARGETS = { labels: Uint8Array.from(fixedUniform(16 * 16, 'labels', 0, 3), Math.floor), batch: 1, height: 16, width: 16, ignoreIndex: 255 };

function runSegLoss(output: () => HeadOutput) {
  return (value: unknown, _fx: Fixtures, seed: number): Promise<unknown> => {
    const out = output();
    const v = lossValues(tidyLoss(() => (value as SegLoss).compute(out, SEG_TARGETS, Rng.derive(seed, 'loss'))));
    tf.dispose(out.kind === 'per-pixel' ? [out.logits] : [out.final.classLogits, out.final.maskLogits, ...out.aux.flatMap((a) => [a.classLogits, a.maskLogits])]);
    return Promise.resolve(v);
  };
}

const HEAD_CH = [4, 6, 8, 10];

async function runHead(value: unknown): Promise<unknown> {
  const head = value as SegHead;
  const levels = [4, 8, 16, 32].map((s, i) => ({ stride: s, features: tf.tensor4d(fixedUniform((32 / s) ** 2 * HEAD_CH[i], `level${i}`, -1, 1), [1, 32 / s, 32 / s, HEAD_CH[i]]) }));
  const out = head.forward(levels);
  const sem = head.semantic(out, 32, 32);
  const data = numbers(sem);
  tf.dispose([sem, ...levels.map((l) => l.features), ...(out.kind === 'per-pixel' ? [out.logits] : [out.final.classLogits, out.final.maskLogits, ...out.aux.flatMap((a) => [a.classLogits, a.maskLogits])])]);
  return Promise.resolve(data);
}

const CLASSES = ['sky', 'tree', 'road'];
const TAG_SAMPLE: SegSample = { id: 's0', height: 4, width: 4, image: new Uint8Array(48), label: Uint8Array.from([0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 2, 2, 255, 255, 2, 2]), tags: ['sky', 'tree', 'road'] };

async function runTagger(value: unknown): Promise<unknown> {
  const t = value as Tagger;
  const tags = t.tagsFor(TAG_SAMPLE, CLASSES, 255);
  return Promise.resolve({ tags, masks: tags.map((g) => { const m = t.maskForTag(g, TAG_SAMPLE.label as Uint8Array, CLASSES); return m ? Array.from(m) : null; }) });
}

const disposeValue = (v: unknown) => (v as { dispose(): void }).dispose();

// ---- backbones and adapters -------------------------------------------------------------------

const z = () => tf.tensor4d(fixedUniform(8 * 8 * 4, 'latent', -1, 1), [1, 8, 8, 4]);

async function runUnet(value: unknown): Promise<unknown> {
  const unet = value as UNet2DConditionModel;
  const x = z();
  const c = tf.tensor3d(fixedUniform(3 * 32, 'context', -1, 1), [1, 3, 32]);
  const out = unet.forward(x, 10, c);
  const data = numbers(out.sample);
  tf.dispose([x, c, out.sample, ...[...(out.features?.values() ?? [])], ...[...(out.attention?.values() ?? [])]]);
  return Promise.resolve(data);
}

/** The tiny UNet an adapter is attached to (one per adapter: an adapter attaches once). */
const adapted = new WeakMap<object, UNet2DConditionModel>();
let tinyUnetConfig: UNetConfig | undefined;

async function runAdapter(value: unknown, fx: Fixtures): Promise<unknown> {
  const a = value as Adapter;
  let unet = adapted.get(a);
  if (!unet) {
    tinyUnetConfig ??= JSON.parse(readFileSync(join(fx.tinySd, 'unet/config.json'), 'utf8')) as UNetConfig;
    unet = new UNet2DConditionModel(tinyUnetConfig, 1); // the same base weights for every build: only the adapter's seed may differ
    a.attach(unet.store as ParameterHolder);
    adapted.set(a, unet);
  }
  return runUnet(unet);
}

function disposeAdapter(value: unknown): void {
  const a = value as Adapter;
  a.dispose();
  adapted.get(a)?.dispose();
}

// ---- the table --------------------------------------------------------------------------------

const none = () => ({});
const tinyHead = { numClasses: 3, inChannels: HEAD_CH };

export const EXAMPLES: Readonly<Record<string, Example>> = {
  // datasets: the file-backed ones read the tiny trees fixtures.ts writes
  'dataset/shapes': {seeded: true,  options: () => ({ length: 4, height: 32, width: 32 }), run: runDataset },
  'dataset/ade20k': { options: (fx) => ({ root: fx.ade20k }), run: runDataset },
  'dataset/reallq': { options: (fx) => ({ root: fx.reallq }), run: runDataset },
  'dataset/cityscapes': { options: (fx) => ({ root: fx.cityscapes }), run: runDataset },
  'dataset/image-folder': { options: (fx) => ({ images: fx.imageFolder }), run: runDataset },
  'dataset/paired-folder': { options: (fx) => ({ hq: fx.hq, lq: fx.lq, lqSuffix: 'x4' }), run: runDataset },

  'degradation/blur': {seeded: true,  options: none, run: runDegradation },
  'degradation/sinc': {seeded: true,  options: none, run: runDegradation },
  'degradation/resize': { options: none, run: runDegradation },
  'degradation/noise': {seeded: true,  options: none, run: runDegradation },
  'degradation/diffjpeg': {seeded: true,  options: none, run: runDegradation },
  'degradation/jpeg-sharp': {seeded: true,  options: none, run: runDegradation },
  'degradation/usm': { options: none, run: runDegradation },
  'degradation/clamp': { options: none, run: runDegradation },
  'degradation/round': { options: none, run: runDegradation },
  'degradation/pipeline': {seeded: true,  options: () => ({ stages: [{ type: 'degradation/blur' }, { type: 'degradation/noise' }] }), run: runDegradation },
  'degradation/random-order': {seeded: true,  options: () => ({ stages: [{ type: 'degradation/noise' }, { type: 'degradation/diffjpeg' }] }), run: runDegradation },

  'metric/miou': { options: () => ({ num_classes: 3 }), run: runMetric(segBatch) },
  'metric/miou-mmseg': { options: () => ({ num_classes: 3 }), run: runMetric(segBatch) },
  'metric/psnr': { options: none, run: runMetric(restorationBatch(16, 16)) },
  'metric/ssim': { options: none, run: runMetric(restorationBatch(16, 16)) },
  // NIQE needs two 96x96 blocks
  'metric/niqe': { options: none, run: runMetric(restorationBatch(96, 192)) },
  'metric/lpips': { options: (fx) => ({ weights: fx.lpipsAlex }), run: runMetric(restorationBatch(32, 32)) },
  'metric/dists': { options: (fx) => ({ weights: fx.dists }), run: runMetric(restorationBatch(32, 32)) },

  // numPoints kept small so the point-sampled criterion stays fast; the other options take their defaults
  'loss/mask2former': {
    options: () => ({ numClasses: 3, numPoints: 64 }),
    run: runSegLoss(() => {
      const pred = () => ({ classLogits: tf.tensor3d(fixedUniform(4 * 4, 'cls', -2, 2), [1, 4, 4]), maskLogits: tf.tensor4d(fixedUniform(4 * 4 * 4, 'mask', -2, 2), [1, 4, 4, 4]) });
      return { kind: 'mask-classification', final: pred(), aux: [pred()] };
    }),
  },
  'loss/per-pixel': { options: () => ({ numClasses: 3 }), run: runSegLoss(() => ({ kind: 'per-pixel', logits: tf.tensor4d(fixedUniform(16 * 16 * 3, 'logits', -2, 2), [1, 16, 16, 3]) })) },
  'loss/l1': { options: none, run: runImageLoss },
  'loss/mse': { options: none, run: runImageLoss },
  'loss/ssim': { options: none, run: runImageLoss },
  'loss/lpips': { options: (fx) => ({ weights: fx.lpipsAlex }), run: runImageLoss },
  'loss/weighted-sum': { options: () => ({ terms: [{ loss: { type: 'loss/l1' } }, { loss: { type: 'loss/mse' }, weight: 2 }] }), run: runImageLoss },
  'loss/scl': {
    options: () => ({ layers: ['.*attn2'] }),
    run: (value) => {
      const l = value as AttentionLoss & { compute(a: ReadonlyMap<string, tf.Tensor>, s: readonly unknown[]): LossResult };
      const att = new Map([['up.attn2', tf.tidy(() => tf.softmax(tf.tensor3d(fixedUniform(16 * 6, 'attention', -2, 2), [1, 16, 6])))]]);
      const mask = Uint8Array.from({ length: 64 }, (_, i) => (i % 8 < 4 ? 1 : 0));
      const v = lossValues(tidyLoss(() => l.compute(att, [{ height: 8, width: 8, targets: [{ tag: 'sky', tokens: [1, 2], mask }], unmatched: [] }])));
      tf.dispose([...att.values()]);
      return Promise.resolve(v);
    },
  },
  'loss/toy-cross-entropy': {
    options: none,
    run: (value) => {
      const l = value as { compute(z: tf.Tensor2D, t: tf.Tensor2D): { loss: tf.Scalar; dLogits: tf.Tensor2D } };
      const logits = tf.tensor2d(fixedUniform(6, 'toy', -2, 2), [2, 3]);
      const targets = tf.tensor2d([1, 0, 0, 0, 0, 1], [2, 3]);
      const { loss, dLogits } = tf.tidy(() => l.compute(logits, targets));
      const v = { loss: numbers(loss), grad: numbers(dLogits) };
      tf.dispose([logits, targets, loss, dLogits]);
      return Promise.resolve(v);
    },
  },

  // tiny widths so initialising two copies and running them takes well under a second
  'head/mask2former': {seeded: true,  options: () => ({ ...tinyHead, hidden: 16, queries: 4, decoderLayers: 1, heads: 2, ffn: 32, pixelDecoderLayers: 1, pixelDecoderHeads: 2, pixelDecoderFfn: 32, maskDim: 16, groups: 4 }), run: runHead, dispose: disposeValue },
  'head/fpn-seg': {seeded: true,  options: () => ({ ...tinyHead, hidden: 16, groups: 4 }), run: runHead, dispose: disposeValue },

  'backbone/unet2d-condition': {seeded: true,  options: () => ({ preset: 'tiny' }), run: runUnet, dispose: disposeValue },
  'backbone/autoencoder-kl': {
    options: () => ({ preset: 'tiny' }),
    run: (value) => {
      const x = z();
      const out = (value as { decode(z: tf.Tensor4D): { sample: tf.Tensor4D; features: Map<string, tf.Tensor> } }).decode(x);
      const data = numbers(out.sample);
      tf.dispose([x, out.sample, ...out.features.values()]);
      return Promise.resolve(data);
    },
    dispose: disposeValue,
  },
  'backbone/clip-text': {seeded: true, 
    options: () => ({ preset: 'tiny' }),
    run: (value) => {
      const e = (value as { encodeText(t: readonly string[]): tf.Tensor3D }).encodeText(['a photo of a cat']);
      const data = numbers(e);
      e.dispose();
      return Promise.resolve(data);
    },
    dispose: disposeValue,
  },
  'backbone/one-step': {
    options: () => ({ unet: { type: 'backbone/unet2d-condition', preset: 'tiny' }, vae: { type: 'backbone/autoencoder-kl', preset: 'tiny' }, text_encoder: { type: 'backbone/clip-text', preset: 'tiny' } }),
    run: (value) => {
      const lq = tf.tensor4d(fixedUniform(16 * 16 * 3, 'lq', -1, 1), [1, 16, 16, 3]);
      const r = value as { textEncoder: { encodeText(t: readonly string[]): tf.Tensor3D }; run(lq: tf.Tensor4D, c: tf.Tensor3D): { image: tf.Tensor4D } };
      const out = tf.tidy(() => r.run(lq, r.textEncoder.encodeText(['a photo'])).image);
      const data = numbers(out);
      tf.dispose([lq, out]);
      return Promise.resolve(data);
    },
    dispose: disposeValue,
  },
  'backbone/resnet': {seeded: true, 
    options: () => ({ preset: 'tiny' }),
    run: (value) => {
      const x = tf.tensor4d(fixedUniform(32 * 32 * 3, 'rgb', -1, 1), [1, 32, 32, 3]);
      const levels = (value as { features(x: tf.Tensor4D): { features: tf.Tensor }[] }).features(x);
      const data = levels.map((l) => numbers(l.features));
      tf.dispose([x, ...levels.map((l) => l.features)]);
      return Promise.resolve(data);
    },
    dispose: disposeValue,
  },

  // B initialised gaussian so a fresh adapter changes the output (with PEFT's zero B every seed gives the base model)
  'adapter/lora': {seeded: true,  options: () => ({ init_b: 'gaussian', target_modules: ['to_q', 'to_v'] }), run: runAdapter, dispose: disposeAdapter },

  'tagger/label-tags': { options: none, run: runTagger },
  'tagger/label-map': { options: none, run: runTagger },
  'tagger/tags-file': { options: (fx) => ({ file: fx.tagsFile }), run: runTagger },
  'tagger/fixed': { options: () => ({ tags: ['sky', 'road'] }), run: runTagger },
  'tagger/none': { options: none, run: runTagger },
};

