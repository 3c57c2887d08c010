import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { joinPerSample, writePerSampleCsv, writeTables } from '../../../registry/metrics/common/artifacts.js';
import { SegmentationMetric } from '../../../registry/metrics/miou/segmentation.js';
import { psnrMetric, ssimMetric } from '../../../registry/metrics/common/restoration.js';

test('per-class scalars iou/<class> and the per_class table as CSV + JSON', () => {
  const m = new SegmentationMetric({ numClasses: 2, ignoreIndex: 255, reduceZeroLabel: false, classNames: ['sky', 'road, wet'], convention: 'detectron2' });
  m.update({ segPred: [{ data: [0, 0, 1, 1], height: 2, width: 2 }], segGt: [{ data: [0, 1, 1, 1], height: 2, width: 2 }] });
  const r = m.compute();
  // analytic: sky tp 1, gt 1, pred 2 -> IoU 1/2; road tp 2, gt 3, pred 2 -> IoU 2/3
  assert.equal(r.scalars['iou/sky'], 50);
  assert.ok(Math.abs(r.scalars['iou/road, wet'] - 200 / 3) < 1e-12);
  assert.ok(Math.abs(r.scalars.miou - (50 + 200 / 3) / 2) < 1e-12);
  const dir = mkdtempSync(join(tmpdir(), 'rass-metrics-'));
  try {
    writeTables(dir, r.tables!, 'miou.');
    const csv = readFileSync(join(dir, 'miou.per_class.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'class,iou,acc');
    assert.ok(csv[2].startsWith('"road, wet",66.66'));
    const json = JSON.parse(readFileSync(join(dir, 'miou.per_class.json'), 'utf8'));
    assert.equal(json[0].iou, 50);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('per-image CSV next to the aggregate: file, metric values', () => {
  const img = (v: number) => ({ data: new Uint8Array(16 * 16).fill(v), height: 16, width: 16, channels: 1 });
  const p = psnrMetric({ cropBorder: 0, testYChannel: false });
  const s = ssimMetric({ cropBorder: 0, testYChannel: false });
  const batch = { ids: ['a.png', 'b.png'], restored: [img(10), img(10)], reference: [img(20), img(10)] };
  p.update(batch);
  s.update(batch);
  const rows = joinPerSample([p.compute(), s.compute()]);
  const dir = mkdtempSync(join(tmpdir(), 'rass-metrics-'));
  try {
    const out = writePerSampleCsv(join(dir, 'eval', 'metrics.json'), rows);
    assert.equal(out, join(dir, 'eval', 'metrics.per-image.csv'));
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    assert.equal(lines[0], 'file,psnr,ssim');
    // analytic: constant error 10 -> PSNR 10 log10(255^2 / 100)
    const [file, ps] = lines[1].split(',');
    assert.equal(file, 'a.png');
    assert.ok(Math.abs(Number(ps) - 10 * Math.log10(65025 / 100)) < 1e-12);
    assert.equal(lines[2], 'b.png,Infinity,1');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
