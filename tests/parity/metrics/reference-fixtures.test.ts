/**
 * Parity with the golden reference fixtures (tests/fixtures/reference/): miou.json (detectron2 and
 * mmseg conventions) and psnr_ssim.json (BasicSR calculate_psnr / calculate_ssim), every case,
 * at the tolerance each case states (or tighter).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SegmentationMetric } from '../../../registry/metrics/miou/segmentation.js';
import { reduceZeroLabel } from '../../../registry/metrics/miou/confusion.js';
import { psnr, ssim, yChannel } from '../../../registry/metrics/common/psnr-ssim.js';
import type { LabelMap, MetricImage } from '../../../framework/api.js';

interface Arr { shape: number[]; data: (number | string)[] }
const load = (file: string) => JSON.parse(readFileSync(resolve(process.cwd(), 'tests/fixtures/reference', file), 'utf8'));
const num = (v: number | string) => Number(v);
const labelMap = (a: Arr): LabelMap => ({ data: a.data.map(num), height: a.shape[0], width: a.shape[1] });
const image = (a: Arr): MetricImage => ({ data: a.data.map(num), height: a.shape[0], width: a.shape[1], channels: a.shape[2] ?? 1 });

function close(actual: number, expected: number | string, tol: number, what: string) {
  const e = num(expected);
  if (Number.isNaN(e)) return assert.ok(Number.isNaN(actual), `${what}: expected NaN, got ${actual}`);
  if (!Number.isFinite(e)) return assert.equal(actual, e, what);
  assert.ok(Math.abs(actual - e) <= tol, `${what}: ${actual} vs ${e} (tol ${tol})`);
}

const miou = load('miou.json');
for (const c of miou.cases) {
  test(`miou.json ${c.name}`, () => {
    const tol: number = c.tolerance.abs;
    const n: number = c.params.num_classes;
    const names = Array.from({ length: n }, (_, i) => `c${i}`);
    const preds = c.input.pred.map(labelMap);
    let gts: LabelMap[] = c.input.gt.map(labelMap);
    const reduce = c.name === 'reduce_zero_label';
    if (reduce) {
      // the raw GT goes through our reduce_zero_label and must give the fixture's reduced GT
      const raw: LabelMap[] = (Array.isArray(c.gt_raw) ? c.gt_raw : [c.gt_raw]).map(labelMap);
      const want: LabelMap[] = (Array.isArray(c.gt_reduced_expected) ? c.gt_reduced_expected : [c.gt_reduced_expected]).map(labelMap);
      raw.forEach((r, i) => assert.deepEqual(Array.from(reduceZeroLabel(r).data), Array.from(want[i].data)));
      gts = raw;
    }
    const run = (convention: 'detectron2' | 'mmseg') => {
      const m = new SegmentationMetric({ numClasses: n, ignoreIndex: c.params.ignore_index, reduceZeroLabel: reduce, classNames: names, convention });
      m.update({ segPred: preds, segGt: gts, ids: preds.map((_: unknown, i: number) => `img${i}`) });
      return m;
    };
    const d2 = c.expected.detectron2;
    const md = run('detectron2');
    // conf_matrix is [pred][gt] with an ignore bucket; ours is conf[gt][pred] without it
    const cm = md.confusion();
    const K = n + 1;
    for (let p = 0; p < n; p++) for (let g = 0; g < n; g++) assert.equal(cm[g * n + p], d2.conf_matrix.data[p * K + g], `conf[pred ${p}][gt ${g}]`);
    const r = md.compute().scalars;
    close(r.miou, d2.reported_x100.mIoU, tol * 100, 'd2 mIoU');
    close(r.fwiou, d2.reported_x100.fwIoU, tol * 100, 'd2 fwIoU');
    close(r.macc, d2.reported_x100.mACC, tol * 100, 'd2 mACC');
    close(r.pacc, d2.reported_x100.pACC, tol * 100, 'd2 pACC');
    names.forEach((nm, i) => {
      close(r[`iou/${nm}`] / 100, d2.IoU[i], tol, `d2 IoU ${i}`);
      close(r[`acc/${nm}`] / 100, d2.ACC[i], tol, `d2 ACC ${i}`);
    });

    const mm = c.expected.mmseg;
    const mr = run('mmseg').compute();
    const rep = mm.reported_x100_rounded2_float32;
    // float32 rounded to 2 decimals: exact after rounding to float32
    for (const [k, ours] of [['mIoU', 'miou'], ['aAcc', 'aacc'], ['mAcc', 'macc'], ['mDice', 'mdice'], ['mPrecision', 'mprecision'], ['mRecall', 'mrecall'], ['mFscore', 'mfscore']]) {
      assert.equal(Math.fround(mr.scalars[ours]), Math.fround(rep[k]), `mmseg reported ${k}: ${mr.scalars[ours]} vs ${rep[k]}`);
    }
    const tbl = mr.tables![0];
    const col = (name: string) => tbl.columns.indexOf(name);
    for (const [k, colName] of [['IoU', 'iou'], ['Acc', 'acc'], ['Dice', 'dice'], ['Precision', 'precision'], ['Recall', 'recall'], ['Fscore', 'fscore']]) {
      (mm[k] as (number | string)[]).forEach((e, i) => close((tbl.rows[i][col(colName)] as number) / 100, e, tol, `mmseg ${k} ${i}`));
    }
    if (c.conventions_differ) assert.notEqual(r.miou, mr.scalars.miou);
  });
}

const ps = load('psnr_ssim.json');
for (const c of ps.cases) {
  test(`psnr_ssim.json ${c.name}`, () => {
    const a = image(c.input);
    const b = image(c.input2);
    const tol = c.tolerance;
    for (const crop of c.params.crop_borders as number[]) {
      for (const y of c.params.test_y_channel as boolean[]) {
        const e = c.expected[`crop${crop}_y${y ? 1 : 0}`];
        // Y: we replicate BasicSR's float32 steps, so we hold 1e-9 instead of the fixture's 1e-4 / 1e-6
        const o = { cropBorder: crop, testYChannel: y };
        close(psnr(a, b, o), e.basicsr_psnr, y ? Math.min(tol.psnr_y_abs, 1e-9) : tol.psnr_abs, `${c.name} crop${crop} y${y} psnr`);
        close(ssim(a, b, o), e.basicsr_ssim, y ? Math.min(tol.ssim_y_abs, 1e-9) : tol.ssim_abs, `${c.name} crop${crop} y${y} ssim`);
        if (y && e.basicsr_psnr_if_rgb_passed_unflipped !== undefined && Number.isFinite(num(e.basicsr_psnr))) {
          // proves the R/B weights are applied the right way round: the swapped value is far off
          assert.ok(Math.abs(psnr(a, b, o) - num(e.basicsr_psnr_if_rgb_passed_unflipped)) > 1e-3);
        }
      }
    }
    if (c.expected.y_channel_img) {
      const want = c.expected.y_channel_img.data.map(num);
      const got = yChannel(a);
      // float32 replicated step for step: identical float32 values
      want.forEach((v: number, i: number) => assert.equal(Math.fround(got[i]), Math.fround(v), `Y[${i}]`));
    }
  });
}
