/** Bad input fails loudly with a UserError naming the sample, never a silently wrong number. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SegmentationMetric } from '../../../registry/metrics/miou/segmentation.js';
import { psnrMetric, ssimMetric } from '../../../registry/metrics/common/restoration.js';
import { reduceZeroLabel } from '../../../registry/metrics/miou/confusion.js';

const seg = (convention: 'detectron2' | 'mmseg' = 'detectron2') => new SegmentationMetric({ numClasses: 3, ignoreIndex: 255, reduceZeroLabel: false, convention });
const map = (data: number[], height: number, width: number) => ({ data, height, width });
const err = (re: RegExp) => (e: unknown) => (e as Error).name === 'UserError' && re.test((e as Error).message);

test('prediction/label shape mismatch names the sample', () => {
  assert.throws(() => seg().update({ ids: ['a.png'], segPred: [map([0, 1, 2, 0], 2, 2)], segGt: [map([0, 1, 2, 0, 1, 2], 2, 3)] }), err(/"a\.png".*2x2.*2x3/));
});

test('a label outside the class range (not the ignore value) names the sample and pixel', () => {
  for (const c of ['detectron2', 'mmseg'] as const) {
    assert.throws(() => seg(c).update({ ids: ['x.png', 'y.png'], segPred: [map([0, 0], 1, 2), map([0, 0], 1, 2)], segGt: [map([0, 1], 1, 2), map([1, 3], 1, 2)] }), err(/"y\.png".*label 3.*x=1.*0\.\.2.*255/));
  }
  assert.throws(() => seg().update({ ids: ['n.png'], segPred: [map([0], 1, 1)], segGt: [map([-1], 1, 1)] }), err(/"n\.png"/));
});

test('a predicted class outside the range is an error; on ignored pixels nothing is checked or counted', () => {
  assert.throws(() => seg().update({ ids: ['p.png'], segPred: [map([0, 7], 1, 2)], segGt: [map([0, 1], 1, 2)] }), err(/"p\.png".*predicted class 7/));
  const m = seg();
  m.update({ ids: ['q.png'], segPred: [map([0, 7], 1, 2)], segGt: [map([0, 255], 1, 2)] });
  assert.equal(m.compute().scalars.miou, 100);
});

test('reduce_zero_label: 0 and 255 become ignore, k becomes k-1', () => {
  assert.deepEqual(Array.from(reduceZeroLabel(map([0, 1, 2, 150, 255], 1, 5)).data), [255, 0, 1, 149, 255]);
});

test('images of different sizes name the sample', () => {
  const a = { data: new Uint8Array(16 * 16 * 3), height: 16, width: 16, channels: 3 };
  const b = { data: new Uint8Array(16 * 15 * 3), height: 16, width: 15, channels: 3 };
  for (const m of [psnrMetric({ cropBorder: 0, testYChannel: false }), ssimMetric({ cropBorder: 0, testYChannel: false })]) {
    assert.throws(() => m.update({ ids: ['lq/0001.png'], restored: [a], reference: [b] }), err(/"lq\/0001\.png".*differ in size/));
  }
  const small = { data: new Uint8Array(12 * 12), height: 12, width: 12, channels: 1 };
  assert.throws(() => ssimMetric({ cropBorder: 1, testYChannel: false }).update({ ids: ['s.png'], restored: [small], reference: [small] }), err(/"s\.png".*too small/));
});

test('a batch without the inputs a metric needs says so', () => {
  assert.throws(() => seg().update({}), err(/segPred/));
  assert.throws(() => psnrMetric({ cropBorder: 0, testYChannel: false }).update({}), err(/restored/));
});

test('large uint8 maps (joint-histogram path) count exactly as the generic path and still reject bad labels', () => {
  const H = 128;
  const W = 160;
  const g = new Uint8Array(H * W);
  const p = new Uint8Array(H * W);
  for (let i = 0; i < g.length; i++) {
    g[i] = i % 17 === 0 ? 255 : (i * 7) % 3;
    p[i] = (i * 5) % 3;
  }
  const fast = seg();
  fast.update({ segPred: [{ data: p, height: H, width: W }], segGt: [{ data: g, height: H, width: W }] });
  const generic = seg();
  generic.update({ segPred: [{ data: Array.from(p), height: H, width: W }], segGt: [{ data: Array.from(g), height: H, width: W }] });
  assert.deepEqual(fast.confusion(), generic.confusion());
  assert.equal(fast.confusion().reduce((a, b) => a + b, 0), g.filter((v) => v !== 255).length);
  g[5 * W + 9] = 3;
  assert.throws(() => seg().update({ ids: ['big.png'], segPred: [{ data: p, height: H, width: W }], segGt: [{ data: g, height: H, width: W }] }), err(/"big\.png".*label 3 at pixel \(y=5, x=9\)/));
  g[5 * W + 9] = 0;
  p[7 * W + 1] = 200;
  assert.throws(() => seg().update({ ids: ['big.png'], segPred: [{ data: p, height: H, width: W }], segGt: [{ data: g, height: H, width: W }] }), err(/predicted class 200 at pixel \(y=7, x=1\)/));
});

test('NIQE rejects images too small for two 96x96 blocks, naming the sample', async () => {
  const { niqeMetric } = await import('../../../registry/metrics/common/restoration.js');
  const im = { data: new Uint8Array(96 * 150 * 3), height: 96, width: 150, channels: 3 };
  assert.throws(() => niqeMetric(0).update({ ids: ['tiny.png'], restored: [im] }), err(/"tiny\.png".*96x150.*two 96x96 blocks/));
});
