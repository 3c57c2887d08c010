/**
 * The metric contract: every built-in metric, split across two "workers" whose states travel
 * as JSON and are merged, gives the same result as one pass; reset() empties the state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plugins } from '../../../registry/metrics/index.js';
import type { Metric, MetricBatch, PluginContext } from '../../../framework/api.js';
import { Rng } from '../../../framework/api.js';

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
};

test('every built-in metric is covered by the split/merge contract test', () => {
  for (const p of plugins) assert.ok(options[p.name], `add metric/${p.name} to the contract test`);
});

for (const p of plugins) {
  for (const opt of options[p.name] ?? []) {
    test(`metric/${p.name} ${JSON.stringify(opt)}: merged workers == single pass`, async () => {
      const seg = p.name.startsWith('miou');
      const batches = Array.from({ length: 4 }, (_, k) => (seg ? segBatch(Rng.derive(7, p.name, k), k, 5) : p.name === 'niqe' ? imgBatch(Rng.derive(7, p.name, k), k, 96, 192) : imgBatch(Rng.derive(7, p.name, k), k)));
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
