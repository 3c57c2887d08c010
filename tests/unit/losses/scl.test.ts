import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { buildNode, PluginRegistry, type AttentionLoss, type AttentionSample, type ComponentNode } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { registryPackage } from '../../../registry/index.js';
import { areaResize, attentionGrid, SCL_PIXEL_EPS, SemanticConstraintLoss, type SclOptions } from '../../../registry/losses/scl/scl.js';

const reg = new PluginRegistry();
reg.loadPackage(registryPackage);
const build = (node: ComponentNode) => buildNode<AttentionLoss>(node, reg, { path: 'experiment.scl' });
const opts = (o: Partial<SclOptions> = {}): SclOptions => ({ layers: ['.*attn2'], tokenWeight: 1, pixelWeight: 1, reduction: 'mean', ...o });
const val = (t: tf.Tensor) => t.dataSync()[0];
const isUserErr = (...parts: string[]) => (e: unknown) => e instanceof Error && e.name === 'UserError' && parts.every((p) => e.message.includes(p));

/** A 4x4 image whose top-left 2x2 quadrant is the tag (aligned with a 2x2 attention grid: cell 0). */
const quadrant = Uint8Array.from([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const one = (tokens: number[], mask = quadrant, extra: Partial<AttentionSample> = {}): AttentionSample => ({ height: 4, width: 4, targets: [{ tag: 't', tokens, mask }], unmatched: [], ...extra });

describe('SCL geometry', () => {
  it('attention grid: h*w = Nq with the image aspect (nearest in log ratio)', () => {
    assert.deepEqual(attentionGrid(48, 13, 17), { h: 6, w: 8 });
    assert.deepEqual(attentionGrid(48, 64, 48), { h: 8, w: 6 });
    assert.deepEqual(attentionGrid(64, 512, 512), { h: 8, w: 8 });
    // a 48x64 image's latent 6x8 halves to 3x4, then (ceil) to 2x2: the closest grid to 0.75 among 1x4 / 2x2 / 4x1
    assert.deepEqual(attentionGrid(4, 48, 64), { h: 2, w: 2 });
    assert.deepEqual(attentionGrid(12, 48, 64), { h: 3, w: 4 });
    assert.deepEqual(attentionGrid(7, 10, 70), { h: 1, w: 7 });
  });

  it('area resize = adaptive average pooling (overlapping windows when sizes do not divide)', () => {
    // 3x2 -> 2x1: rows [0, 2) and [1, 3)
    assert.deepEqual([...areaResize(Uint8Array.from([1, 0, 1, 1, 0, 0]), 3, 2, 2, 1)], [0.75, 0.5]);
    assert.deepEqual([...areaResize(quadrant, 4, 4, 2, 2)], [1, 0, 0, 0]);
    assert.deepEqual([...areaResize(quadrant, 4, 4, 1, 1)], [0.25]);
    assert.deepEqual([...areaResize(quadrant, 4, 4, 4, 4)], [...quadrant]);
  });
});

describe('loss/scl', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('builds with the documented defaults; a bad regex is a UserError naming the option', async () => {
    const l = (await build({ type: 'loss/scl' })) as SemanticConstraintLoss;
    assert.deepEqual(l.layers, ['.*attn2']);
    assert.deepEqual({ t: l.o.tokenWeight, p: l.o.pixelWeight, r: l.o.reduction }, { t: 1, p: 1, r: 'mean' });
    await assert.rejects(build({ type: 'loss/scl', layers: ['ok', 'attn2('] }), isUserErr('experiment.scl.layers[1]', 'attn2('));
  });

  it('attention only and uniformly inside the mask: token term 0, pixel term -log(1 - eps) (its floor)', () => {
    const loss = new SemanticConstraintLoss(opts());
    // grid 2x2 (Nq 4), 3 prompt tokens: token 1 puts 0.5 on cell 0 and nothing elsewhere
    const P = tf.tensor3d([[[0.5, 0.5, 0], [0.5, 0, 0.5], [1, 0, 0], [1, 0, 0]]]);
    const r = loss.compute(new Map([['up.attn2', P]]), [one([1])]);
    assert.ok(Math.abs(val(r.terms.scl_token)) < 1e-7, `token ${val(r.terms.scl_token)}`);
    assert.ok(Math.abs(val(r.terms.scl_pixel) + Math.log(1 - SCL_PIXEL_EPS)) < 1e-6, `pixel ${val(r.terms.scl_pixel)}`);
    assert.deepEqual({ m: r.matched, u: r.unmatched }, { m: 1, u: 0 });
  });

  it('analytic value: A = (0.4, 0.1, 0.1, 0.1) on a one-cell mask, weighted terms', () => {
    const loss = new SemanticConstraintLoss(opts({ tokenWeight: 2, pixelWeight: 0.5 }));
    const P = tf.tensor3d([[[0.6, 0.4], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]]]);
    const r = loss.compute(new Map([['x.attn2', P]]), [one([1])]);
    const e = SCL_PIXEL_EPS;
    const token = (1 - 0.4 / 0.7) ** 2;
    const p = [1, 0.25, 0.25, 0.25].map((n) => e + (1 - 2 * e) * n);
    const pixel = (-Math.log(p[0]) - 3 * Math.log(1 - p[1])) / 4;
    assert.ok(Math.abs(val(r.terms.scl_token) - 2 * token) < 1e-6);
    assert.ok(Math.abs(val(r.terms.scl_pixel) - 0.5 * pixel) < 1e-6);
    assert.ok(Math.abs(val(r.total) - (2 * token + 0.5 * pixel)) < 1e-6);
  });

  it('a multi-token tag uses the mean of its token maps', () => {
    const loss = new SemanticConstraintLoss(opts());
    // token 3 = mean of tokens 1 and 2
    const rows = [[0.1, 0.5, 0.3], [0.2, 0.1, 0.4], [0.3, 0.2, 0.2], [0.6, 0.05, 0.05]].map(([a, b, c]) => [a, b, c, (b + c) / 2]);
    const P = tf.tensor3d([rows]);
    const multi = loss.compute(new Map([['l.attn2', P]]), [one([1, 2])]);
    const single = loss.compute(new Map([['l.attn2', P]]), [one([3])]);
    assert.ok(Math.abs(val(multi.total) - val(single.total)) < 1e-6);
    const first = loss.compute(new Map([['l.attn2', P]]), [one([1])]);
    assert.ok(Math.abs(val(multi.total) - val(first.total)) > 1e-3, 'the mean differs from the first token alone');
  });

  it('no usable target in the batch: total 0 with a zero (not missing, not NaN) gradient; unmatched counted', () => {
    const loss = new SemanticConstraintLoss(opts());
    const P = tf.randomUniform([2, 4, 3], 0.01, 1, 'float32', 1);
    const samples: AttentionSample[] = [
      { height: 4, width: 4, targets: [], unmatched: ['spire', 'sky-ish'] },
      { height: 4, width: 4, targets: [{ tag: 'cut', tokens: [], mask: quadrant }, { tag: 'absent', tokens: [1], mask: new Uint8Array(16) }], unmatched: [] },
    ];
    const r = loss.compute(new Map([['a.attn2', P]]), samples);
    // unmatched: 2 tags without a class, 1 cut off by the prompt limit, 1 whose class has no pixel here
    assert.deepEqual({ t: val(r.total), m: r.matched, u: r.unmatched }, { t: 0, m: 0, u: 4 });
    const g = tf.grad((p: tf.Tensor) => loss.compute(new Map([['a.attn2', p]]), samples).total)(P);
    assert.ok([...g.dataSync()].every((x) => x === 0));
  });

  it('a sample without matched tags contributes nothing (value and gradient), for mean and sample-mean', () => {
    for (const reduction of ['mean', 'sample-mean'] as const) {
      const loss = new SemanticConstraintLoss(opts({ reduction }));
      const P = tf.randomUniform([2, 4, 3], 0.01, 1, 'float32', 2);
      const P0 = tf.slice(P, [0, 0, 0], [1, -1, -1]);
      const empty: AttentionSample = { height: 4, width: 4, targets: [], unmatched: ['spire'] };
      const both = loss.compute(new Map([['a.attn2', P]]), [one([1]), empty]);
      const alone = loss.compute(new Map([['a.attn2', P0]]), [one([1])]);
      assert.ok(Math.abs(val(both.total) - val(alone.total)) < 1e-6, reduction);
      assert.ok(val(both.total) > 0);
      const g = tf.grad((p: tf.Tensor) => loss.compute(new Map([['a.attn2', p]]), [one([1]), empty]).total)(P).arraySync() as number[][][];
      assert.ok(g[1].flat().every((x) => x === 0), 'sample 1 rows get no gradient');
      assert.ok(g[0].flat().some((x) => x !== 0));
    }
  });

  it('reductions: sum = mean x #(sample, tag, layer); sample-mean weighs samples equally', () => {
    const P = tf.randomUniform([2, 4, 4], 0.01, 1, 'float32', 3);
    const Q = tf.randomUniform([2, 16, 4], 0.01, 1, 'float32', 4);
    const maps = new Map([['a.attn2', P], ['b.attn2', Q]]);
    const half = Uint8Array.from(quadrant.map((_, i) => (i < 8 ? 1 : 0)));
    const samples = [one([1, 2], quadrant, { targets: [{ tag: 'x', tokens: [1, 2], mask: quadrant }, { tag: 'y', tokens: [3], mask: half }] }), one([3], half)];
    const v = (reduction: SclOptions['reduction']) => val(new SemanticConstraintLoss(opts({ reduction })).compute(maps, samples).total);
    assert.ok(Math.abs(v('sum') - 6 * v('mean')) < 1e-5); // 3 targets x 2 layers
    const per = (s: AttentionSample[]) => val(new SemanticConstraintLoss(opts({ reduction: 'sum' })).compute(new Map([['a.attn2', tf.slice(P, [samples.indexOf(s[0]), 0, 0], [1, -1, -1])], ['b.attn2', tf.slice(Q, [samples.indexOf(s[0]), 0, 0], [1, -1, -1])]]), s).total);
    const s0 = per([samples[0]]) / 4; // 2 tags x 2 layers
    const s1 = per([samples[1]]) / 2;
    assert.ok(Math.abs(v('sample-mean') - (s0 + s1) / 2) < 1e-5);
  });

  it('layer selection: full-match regexes; a pattern matching no captured layer is a UserError listing them', () => {
    const P = tf.randomUniform([1, 4, 3], 0.01, 1, 'float32', 5);
    const loss = new SemanticConstraintLoss(opts({ layers: ['down.*attn2'] }));
    assert.deepEqual(loss.selectLayers(['down.0.attn2', 'down.0.attn1', 'xdown.attn2', 'up.attn2', 'down.attn2.proj']), ['down.0.attn2']);
    const r = loss.compute(new Map([['down.0.attn2', P], ['up.attn2', tf.fill([1, 4, 3], NaN)]]), [one([1])]);
    assert.ok(Number.isFinite(val(r.total)), 'an unselected layer is never read');
    assert.throws(() => new SemanticConstraintLoss(opts({ layers: ['mid.*attn2'] })).compute(new Map([['up.attn2', P]]), [one([1])]), isUserErr('"mid.*attn2"', 'up.attn2'));
  });

  it('prepared tensors: shapes fixed by batch, layers and max_tags (not the tag count); more tags than max_tags is a UserError', async () => {
    const loss = (await build({ type: 'loss/scl', max_tags: 3 })) as SemanticConstraintLoss;
    const shapes = new Map<string, [number, number, number]>([['a.attn2', [2, 16, 5]], ['b.attn2', [2, 4, 5]], ['c.attn1', [2, 16, 16]]]);
    const tag = (tokens: number[]) => ({ tag: `t${tokens[0]}`, tokens, mask: quadrant });
    const few = [one([1]), { height: 4, width: 4, targets: [], unmatched: ['x'] }];
    const many = [one([1], quadrant, { targets: [tag([1]), tag([2, 3]), tag([4])] }), one([2])];
    const a = loss.prepare(few, shapes);
    const b = loss.prepare(many, shapes);
    const dims = (p: typeof a) => Object.fromEntries(Object.entries(p.tensors).map(([k, t]) => [k, t.shape]));
    assert.deepEqual(dims(a), { 'comb/5': [2, 5, 3], masks: [4, 16, 3], valid: [4, 16, 1], r_token: [4, 3], r_pixel: [4, 3] });
    assert.deepEqual(dims(b), dims(a));
    assert.deepEqual({ m: a.matched, u: a.unmatched, mb: b.matched, ub: b.unmatched }, { m: 1, u: 1, mb: 4, ub: 0 });
    // mean reduction over 4 targets x 2 layers; the coarse layer's pixel weight is r / 4 cells
    assert.deepEqual([...b.tensors.r_token!.dataSync()].filter((x) => x > 0).length, 8);
    assert.ok(Math.abs(b.tensors.r_pixel!.dataSync()[2 * 3]! - 1 / 8 / 4) < 1e-9);
    const four = one([1], quadrant, { targets: [tag([1]), tag([2]), tag([3]), tag([4])] });
    assert.throws(() => loss.prepare([four], new Map([['a.attn2', [1, 16, 5]]])), isUserErr('experiment.scl.max_tags', '4 tags', 'max_tags = 3'));
    tf.dispose([...Object.values(a.tensors), ...Object.values(b.tensors)]);
  });

  it('wiring bugs are RangeErrors: token outside the prompt, mask of the wrong size, batch mismatch', () => {
    const loss = new SemanticConstraintLoss(opts());
    const P = tf.randomUniform([1, 4, 3], 0.01, 1, 'float32', 6);
    assert.throws(() => loss.compute(new Map([['a.attn2', P]]), [one([3])]), /token position 3 outside the 3 prompt tokens/);
    assert.throws(() => loss.compute(new Map([['a.attn2', P]]), [one([1], new Uint8Array(5))]), /mask of tag "t" has 5 values for a 4x4 image/);
    assert.throws(() => loss.compute(new Map([['a.attn2', P]]), [one([1]), one([1])]), /expected \[2, Nq, Nk\]/);
  });
});
