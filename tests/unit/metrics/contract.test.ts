/**
 * The metric contract: every built-in metric, split across two "workers" whose states travel
 * as JSON and are merged, gives the same result as one pass; reset() empties the state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plugins } from '../../../registry/metrics/index.js';
import type { Metric, MetricBatch, PluginContext } from '../../../framework/api.js';
import { Rng, writeSafetensors } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** Random DISTS weights (VGG16 features + alpha/beta; shapes from the parity fixture) in a temp safetensors file. */
function distsWeights(): string {
  const fx = JSON.parse(readFileSync(resolve(process.cwd(), 'tests/fixtures/metrics/dists.json'), 'utf8'));
  const rng = Rng.derive(3, 'dists-contract');
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const [k, shape] of Object.entries(fx.shapes as Record<string, number[]>)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const bound = 1 / Math.sqrt(k.endsWith('bias') ? 9 * 64 : shape.slice(1).reduce((a, b) => a * b, 1));
    const data = new Float32Array(n);
    // a cheap deterministic fill (14.7M values): a seeded offset into a fixed pattern
    const off = rng.int(0, 1000);
    for (let i = 0; i < n; i++) data[i] = bound * Math.sin((i + off) * 12.9898);
    tensors[k] = { dtype: 'F32', shape, data };
  }
  tensors.alpha = { dtype: 'F32', shape: [1, fx.alpha.length, 1, 1], data: Float32Array.from(fx.alpha) };
  tensors.beta = { dtype: 'F32', shape: [1, fx.beta.length, 1, 1], data: Float32Array.from(fx.beta) };
  const dir = mkdtempSync(join(tmpdir(), 'rass-metrics-contract-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'dists.safetensors');
  writeSafetensors(file, tensors);
  return file;
}

/** Small random AlexNet-LPIPS weights (shapes from the parity fixture) in a temp safetensors file. */
function alexWeights(): string {
  const fx = JSON.parse(readFileSync(resolve(process.cwd(), 'tests/fixtures/metrics/lpips.json'), 'utf8'));
  const shapes: Record<string, number[]> = fx.cases.find((c: { net: string }) => c.net === 'alex').shapes;
  const rng = Rng.derive(3, 'lpips-contract');
  const tensors = Object.fromEntries(Object.entries(shapes).map(([k, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return [k, { dtype: 'F32' as const, shape, data: Float32Array.from({ length: n }, () => (k.startsWith('lin') ? rng.random() : rng.uniform(-0.05, 0.05))) }];
  }));
  const dir = mkdtempSync(join(tmpdir(), 'rass-metrics-contract-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'alex.safetensors');
  writeSafetensors(file, tensors);
  return file;
}

const ctx = { path: 'metrics.m', seed: 0, log: console, resolvePath: (p: string) => p, build: async () => undefined, services: {} } as unknown as PluginContext;

function segBatch(rng: Rng, k: number, n: number): MetricBatch {
  const H = 9;
  const W = 7;
  const mk = (ignore: boolean) => ({ data: Array.from({ length: H * W }, () => (ignore && rng.random() < 0.1 ? 255 : rng.int(0, n - 1))), height: H, width: W });
  return { ids: [`s${k}a`, `s${k}b`], segPred: [mk(false), mk(false)], segGt: [mk(true), mk(true)] };
}

function imgBatch(rng: Rng, k: number, H = 20, W = 18): MetricBatch {
  const mk = () => ({ data: Uint8Array.from({ length: H * W * 3 }, () => rng.int(0, 255)), height: H, width: W, channels: 3 });
  const a = mk();
  const b = { ...a, data: a.data.map((v) => Math.min(255, Math.max(0, v + rng.int(-20, 20)))) };
  // one identical pair, so an Infinity PSNR crosses the JSON boundary
  return { ids: [`i${k}a`, `i${k}b`], restored: [a, a], reference: [b, a] };
}

const options: Record<string, Record<string, unknown>[]> = {
  miou: [{ num_classes: 5, ignore_index: 255, reduce_zero_label: false }],
  'miou-mmseg': [{ num_classes: 5, ignore_index: 255, reduce_zero_label: false }],
  psnr: [{ crop_border: 0, test_y_channel: false }, { crop_border: 2, test_y_channel: true }],
  ssim: [{ crop_border: 0, test_y_channel: false }, { crop_border: 2, test_y_channel: true }],
  niqe: [{ crop_border: 0 }],
  lpips: [{ net: 'alex', weights: alexWeights() }],
  dists: [{ weights: distsWeights() }],
};

test('every built-in metric is covered by the split/merge contract test', () => {
  for (const p of plugins) assert.ok(options[p.name], `add metric/${p.name} to the contract test`);
});

for (const p of plugins) {
  for (const opt of options[p.name] ?? []) {
    test(`metric/${p.name} ${JSON.stringify(opt)}: merged workers == single pass`, async () => {
      await useBackend('cpu');
      const seg = p.name.startsWith('miou');
      const batches = Array.from({ length: 4 }, (_, k) => (seg ? segBatch(Rng.derive(7, p.name, k), k, 5) : p.name === 'niqe' ? imgBatch(Rng.derive(7, p.name, k), k, 96, 192) : p.name === 'lpips' ? imgBatch(Rng.derive(7, p.name, k), k, 64, 64) : p.name === 'dists' ? imgBatch(Rng.derive(7, p.name, k), k, 24, 24) : imgBatch(Rng.derive(7, p.name, k), k)));
      const single = (await p.create(opt, ctx)) as Metric;
      for (const b of batches) single.update(b);
      const w1 = (await p.create(opt, ctx)) as Metric;
      const w2 = (await p.create(opt, ctx)) as Metric;
      batches.slice(0, 2).forEach((b) => w1.update(b));
      batches.slice(2).forEach((b) => w2.update(b));
      w1.merge(JSON.parse(JSON.stringify(w2.state())));
      const a = single.compute();
      const b = w1.compute();
      assert.deepEqual(b, a);
      const values = [...Object.values(a.scalars), ...(a.perSample ?? []).flatMap((r) => Object.values(r.values))];
      assert.ok(values.some((v) => Number.isFinite(v) && v !== 0), 'some real number came out');
      single.reset();
      single.update(batches[0]);
      const w3 = (await p.create(opt, ctx)) as Metric;
      w3.update(batches[0]);
      assert.deepEqual(single.compute(), w3.compute(), 'reset() forgets earlier batches');
    });
  }
}

test('segmentation plugins need num_classes or class_names, and names must match the count', async () => {
  const miou = plugins.find((p) => p.name === 'miou')!;
  await assert.rejects(async () => miou.create({ ignore_index: 255, reduce_zero_label: false }, ctx), (e: Error) => e.name === 'UserError' && /metrics\.m: set num_classes or class_names/.test(e.message));
  await assert.rejects(async () => miou.create({ num_classes: 3, class_names: ['a', 'b'], ignore_index: 255, reduce_zero_label: false }, ctx), (e: Error) => e.name === 'UserError' && /2 names but num_classes is 3/.test(e.message));
  const m = (await miou.create({ class_names: ['a', 'b'], ignore_index: 255, reduce_zero_label: false }, ctx)) as Metric;
  m.update({ segPred: [{ data: [0, 1], height: 1, width: 2 }], segGt: [{ data: [0, 0], height: 1, width: 2 }] });
  assert.deepEqual(Object.keys(m.compute().scalars).filter((k) => k.startsWith('iou/')), ['iou/a', 'iou/b']);
});

test('metric/lpips without weights fails at create with where to put them and how to make them', async () => {
  const lp = plugins.find((p) => p.name === 'lpips')!;
  await assert.rejects(async () => lp.create({ net: 'vgg' }, ctx), (e: Error) => e.name === 'UserError' && /metrics\.m\.weights: .*net "vgg".*convert_lpips_weights\.py/.test(e.message));
  await assert.rejects(async () => lp.create({ net: 'alex', weights: '/nonexistent/alex.safetensors' }, ctx), (e: Error) => e.name === 'UserError' && /no LPIPS weights at \/nonexistent\/alex\.safetensors.*convert_lpips_weights\.py/.test(e.message));
});

test('LPIPS weights missing a tensor name the file and the tensor', async () => {
  const { Lpips } = await import('../../../registry/metrics/lpips/lpips.js');
  const file = alexWeights();
  const { readSafetensors } = await import('../../../framework/api.js');
  const t = readSafetensors(file);
  const m = new Map([...t.tensors].filter(([k]) => k !== 'lin3.model.1.weight').map(([k, e]) => [k, { shape: e.shape, data: new Float32Array(e.bytes.slice().buffer) }]));
  assert.throws(() => new Lpips('alex', m, file), (e: Error) => e.name === 'UserError' && e.message.includes(file) && /"lin3\.model\.1\.weight"/.test(e.message));
});

test('metric/dists without weights fails at create with where to put them and how to make them', async () => {
  const d = plugins.find((p) => p.name === 'dists')!;
  await assert.rejects(async () => d.create({}, ctx), (e: Error) => e.name === 'UserError' && /metrics\.m\.weights: .*convert_dists_weights\.py/.test(e.message));
  await assert.rejects(async () => d.create({ weights: '/nonexistent/d.safetensors' }, ctx), (e: Error) => e.name === 'UserError' && /no DISTS weights at \/nonexistent\/d\.safetensors/.test(e.message));
});
