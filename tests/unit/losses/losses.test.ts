import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { MASK2FORMER_LOSS_DEFAULTS, MaskClassificationLoss, mostUncertainFirst, planHelperState, planLayer, rngPoints, uncertainPoints, type PointSource } from '../../../registry/losses/mask2former/mask-criterion.js';
import { maskTargets } from '../../../registry/losses/mask2former/targets.js';
import { cornerTable, sampleChannel, sampleChannels, samplePoints } from '../../../registry/losses/mask2former/host-sampling.js';
import { pointSample } from '../../../registry/heads/common/sampling.js';
import { PerPixelLoss } from '../../../registry/losses/per-pixel/per-pixel.js';
import { mask2formerLoss } from '../../../registry/losses/mask2former/plugin.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';

describe('per-pixel loss', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('CE and dice match closed forms, ignore pixels excluded', () => {
    // 1 image, 1x3 pixels, 2 classes; logits chosen so softmax is known
    const logits = tf.tensor4d([0, 0, Math.log(3), 0, 5, -5], [1, 1, 3, 2]);
    const labels = Uint8Array.from([0, 0, 255]);
    const loss = new PerPixelLoss({ numClasses: 2, ceWeight: 1, diceWeight: 2, smooth: 1 });
    const r = loss.compute({ kind: 'per-pixel', logits }, { labels, batch: 1, height: 1, width: 3, ignoreIndex: 255 });
    // p(class 0): 0.5 and 0.75 -> CE = (ln 2 + ln(4/3)) / 2
    const ce = (Math.log(2) + Math.log(4 / 3)) / 2;
    assert.ok(Math.abs(r.terms.loss_ce.dataSync()[0] - ce) < 1e-6);
    // class 0: inter 1.25, sum p 1.25, sum t 2 -> 1 - 3.5/4.25 ; class 1: inter 0, sum p 0.75, t 0 -> 1 - 1/1.75
    const dice = ((1 - 3.5 / 4.25) + (1 - 1 / 1.75)) / 2;
    assert.ok(Math.abs(r.terms.loss_dice.dataSync()[0] - 2 * dice) < 1e-6);
    assert.ok(Math.abs(r.total.dataSync()[0] - (ce + 2 * dice)) < 1e-6);
  });

  it('upsamples low-resolution logits to the label size and does not leak', async () => {
    const [N, h, w, C, H, W] = [2, 4, 4, 3, 16, 16];
    const loss = new PerPixelLoss({ numClasses: C, ceWeight: 1, diceWeight: 1, smooth: 1 });
    const logits = tf.randomNormal([N, h, w, C], 0, 1, 'float32', 3) as tf.Tensor4D;
    const labels = new Uint8Array(N * H * W).map((_, i) => (i % 7 === 0 ? 255 : i % C));
    // reference in float64: bilinear upsampling with half-pixel centres and clamped edges (the
    // definition of F.interpolate(align_corners=False), MMSegmentation's resize), then the CE /
    // dice closed forms of the test above, at the label size
    const ld = logits.dataSync();
    const src = (b: number, y: number, x: number, c: number) => ld[((b * h + Math.min(h - 1, Math.max(0, y))) * w + Math.min(w - 1, Math.max(0, x))) * C + c];
    let nll = 0;
    let count = 0;
    const inter = new Float64Array(C);
    const sumP = new Float64Array(C);
    const sumT = new Float64Array(C);
    for (let b = 0; b < N; b++) for (let Y = 0; Y < H; Y++) for (let X = 0; X < W; X++) {
      const lab = labels[(b * H + Y) * W + X];
      if (lab === 255) continue;
      const sy = Math.max(0, ((Y + 0.5) * h) / H - 0.5);
      const sx = Math.max(0, ((X + 0.5) * w) / W - 0.5);
      const y0 = Math.floor(sy);
      const x0 = Math.floor(sx);
      const fy = sy - y0;
      const fx = sx - x0;
      const z = Array.from({ length: C }, (_, c) => (1 - fy) * ((1 - fx) * src(b, y0, x0, c) + fx * src(b, y0, x0 + 1, c)) + fy * ((1 - fx) * src(b, y0 + 1, x0, c) + fx * src(b, y0 + 1, x0 + 1, c)));
      const lse = Math.log(z.reduce((acc, v) => acc + Math.exp(v), 0));
      nll += lse - z[lab];
      count++;
      for (let c = 0; c < C; c++) {
        const pc = Math.exp(z[c] - lse);
        sumP[c] += pc;
        if (c === lab) {
          inter[c] += pc;
          sumT[c] += 1;
        }
      }
    }
    const ce = nll / count;
    let dice = 0;
    for (let c = 0; c < C; c++) dice += (1 - (2 * inter[c] + 1) / (sumP[c] + sumT[c] + 1)) / C;
    await assertTensorCountFlat(() => {
      const r = loss.compute({ kind: 'per-pixel', logits }, { labels, batch: N, height: H, width: W, ignoreIndex: 255 });
      const got = { ce: r.terms.loss_ce.dataSync()[0], dice: r.terms.loss_dice.dataSync()[0] };
      assert.ok(Math.abs(got.ce - ce) < 1e-5 * ce, `CE at the label size ${got.ce} vs ${ce}`);
      assert.ok(Math.abs(got.dice - dice) < 1e-5 * dice, `dice at the label size ${got.dice} vs ${dice}`);
      tf.dispose([r.total, ...Object.values(r.terms)]);
    });
    logits.dispose();
  });
});

describe('mask2former loss plugin', () => {
  it('defaults follow docs/method.md', async () => {
    const l = (await mask2formerLoss.create({ numClasses: 150 } as never, {} as never)) as unknown as { o: Record<string, number | boolean> };
    assert.deepEqual(
      { c: l.o.classWeight, m: l.o.maskWeight, d: l.o.diceWeight, n: l.o.noObjectWeight, p: l.o.numPoints, os: l.o.oversampleRatio, is: l.o.importanceSampleRatio, ds: l.o.deepSupervision },
      { c: 2, m: 5, d: 5, n: 0.1, p: 12544, os: 3, is: 0.75, ds: true },
    );
  });

  it('the host plan draws the same points through the host forms of the point source as through its tensor forms', () => {
    // 2 images, 5 queries, 3 classes + no-object, 8x8 masks; labels with 2-3 classes per image
    const r = Rng.derive(9, 'plan');
    const [N, Q, C, h, w, H, W] = [2, 5, 3, 8, 8, 16, 16];
    const pred = {
      classLogits: tf.tensor3d(r.fillNormal(new Float32Array(N * Q * (C + 1))) as Float32Array, [N, Q, C + 1]),
      maskLogits: tf.tensor4d(r.fillNormal(new Float32Array(N * h * w * Q), 0, 3) as Float32Array, [N, h, w, Q]),
    };
    const labels = Uint8Array.from({ length: N * H * W }, (_, i) => Math.floor((i % W) / 6) % C);
    const targets = maskTargets({ batch: N, height: H, width: W, labels, ignoreIndex: 255 } as never, C);
    const o = { ...MASK2FORMER_LOSS_DEFAULTS, numClasses: C, numPoints: 64 };
    const hostForms = rngPoints(Rng.derive(4, 'pts'), o);
    const t = rngPoints(Rng.derive(4, 'pts'), o);
    const tensorOnly: PointSource = { matcher: t.matcher, loss: t.loss };
    assert.ok(hostForms.matcherHost && hostForms.lossHost);
    const a = planLayer(pred, targets, hostForms, o);
    const b = planLayer(pred, targets, tensorOnly, o);
    assert.deepEqual(a.matches, b.matches);
    assert.ok(a.matches.some((m) => m.queries.length > 0), 'something matched: the loss points were drawn');
    for (const k of Object.keys(b.tensors)) assert.deepEqual(Array.from(a.tensors[k]!.dataSync()), Array.from(b.tensors[k]!.dataSync()), k);
    tf.dispose([pred.classLogits, pred.maskLogits, ...Object.values(a.tensors), ...Object.values(b.tensors)]);
  });

  it('the host plan split over a helper thread gives exactly the plan of one thread, step after step', () => {
    // 2 images, 4 prediction layers (final + 3 aux), 6 queries, 4 classes + no-object
    const r = Rng.derive(11, 'plan-threads');
    const [N, Q, C, h, w, H, W] = [2, 6, 4, 8, 8, 32, 32];
    const pred = () => ({
      classLogits: tf.tensor3d(r.fillNormal(new Float32Array(N * Q * (C + 1))) as Float32Array, [N, Q, C + 1]),
      maskLogits: tf.tensor4d(r.fillNormal(new Float32Array(N * h * w * Q), 0, 3) as Float32Array, [N, h, w, Q]),
    });
    const output = { kind: 'mask-classification' as const, final: pred(), aux: [pred(), pred(), pred()] };
    const labels = Uint8Array.from({ length: N * H * W }, (_, i) => (Math.floor((i % W) / 5) + Math.floor(i / (W * 9))) % C);
    const targets = { batch: N, height: H, width: W, labels, ignoreIndex: 255 } as never;
    const o = { ...MASK2FORMER_LOSS_DEFAULTS, numClasses: C, numPoints: 96 };
    const one = new MaskClassificationLoss(o, 1);
    const two = new MaskClassificationLoss(o, 2);
    for (let step = 0; step < 3; step++) {
      const a = one.prepare(output, targets, Rng.derive(1, 'step', step));
      const b = two.prepare(output, targets, Rng.derive(1, 'step', step));
      assert.equal(planHelperState(), 'running', 'the helper thread planned part of the layers');
      assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
      assert.ok(Object.keys(a).some((k) => k.startsWith('l3/')), 'four layers planned');
      for (const k of Object.keys(a)) assert.deepEqual(Array.from(b[k]!.dataSync()), Array.from(a[k]!.dataSync()), `step ${step}: ${k}`);
      tf.dispose([...Object.values(a), ...Object.values(b)]);
    }
    tf.dispose([output.final, ...output.aux].flatMap((p) => [p.classLogits, p.maskLogits]));
  });

  it('host point sampling: the fused and all-channel forms equal the corner table to the bit, and the device pointSample', () => {
    const r = Rng.derive(3, 'host-sampling');
    const [H, W, C, n] = [6, 9, 5, 400];
    const map = r.fillNormal(new Float32Array(2 * H * W * C), 0, 2) as Float32Array; // two images, channel-last
    // points inside, on the edges and corners, and outside the map (zero padding)
    const pts = Float32Array.from({ length: n * 2 }, (_, i) => (i < 16 ? [0, 1, 0.5, -0.05, 1.05, 1 / W, 1 - 0.5 / H, 0.999][i % 8]! : r.random() * 1.2 - 0.1));
    const table = cornerTable(pts, n, H, W);
    const offset = H * W * C; // the second image
    const perChannel = new Float32Array(C * n);
    for (let c = 0; c < C; c++) sampleChannel(map, offset, C, c, table, perChannel, c * n);
    assert.deepEqual(Array.from(sampleChannels(map, offset, C, table, new Float32Array(C * n))), Array.from(perChannel));
    // single-channel: channel 2 copied out as an [H, W] map
    const single = Float32Array.from({ length: H * W }, (_, i) => map[offset + i * C + 2]!);
    assert.deepEqual(Array.from(samplePoints(pts, n, single, 0, H, W, new Float32Array(n))), Array.from(perChannel.subarray(2 * n, 3 * n)));
    // the device version (grid_sample semantics: bilinear, zeros outside, align_corners=False)
    const dev = tf.tidy(() => pointSample(tf.tensor4d(map.subarray(offset), [1, H, W, C]), tf.tensor3d(pts, [1, n, 2])).dataSync());
    let worst = 0;
    for (let p = 0; p < n; p++) for (let c = 0; c < C; c++) worst = Math.max(worst, Math.abs((dev[p * C + c] as number) - (perChannel[c * n + p] as number)));
    assert.ok(worst < 1e-5, `host vs device sampling: ${worst}`);
  });

  it('importance sampling picks points whose logits are near 0', () => {
    // logits = 20 * (x - 0.5): uncertain only near the vertical line x = 0.5
    const W = 32;
    const data = new Float32Array(W * W).map((_, i) => 20 * (((i % W) + 0.5) / W - 0.5));
    const logits = tf.tensor4d(data, [1, W, W, 1]);
    const pts = uncertainPoints(logits, Rng.derive(2, 'u'), 100, 3, 0.75);
    const xs = (pts.dataSync() as Float32Array).filter((_, i) => i % 2 === 0);
    const near = (a: Float32Array) => a.filter((x) => Math.abs(x - 0.5) < 0.2).length;
    // the 75 important points come from the 300 candidates closest to x = 0.5: about 75 within 0.2
    assert.ok(near(xs.subarray(0, 75)) === 75, `important points near the boundary: ${near(xs.subarray(0, 75))}/75`);
    assert.ok(near(xs.subarray(75)) < 20, 'the 25 random points are spread out');
    tf.dispose([logits, pts]);
  });

  it('the uncertainty order is |logit| ascending with ties by index, as a comparator sort gives it', () => {
    const r = Rng.derive(5, 'order');
    for (const n of [1, 2, 7, 3072]) {
      // quantised values: many exact ties, zeros of both signs, large and tiny magnitudes
      const u = Float32Array.from({ length: n }, () => [0, -0, 1e-30, -1e-30, 3e4][r.int(0, 4)]! * (r.random() < 0.5 ? 1 : Math.round(r.random() * 4)));
      const want = Array.from({ length: n }, (_, i) => i).sort((a, b) => Math.abs(u[a]!) - Math.abs(u[b]!) || a - b);
      assert.deepEqual(Array.from(mostUncertainFirst(u, n)), want, `n=${n}`);
      // only the first k (the important points): the same entries, selected then sorted
      for (const k of [0, 1, Math.floor(n / 4), Math.floor((3 * n) / 4), n - 1]) {
        assert.deepEqual(Array.from(mostUncertainFirst(u, n, k).subarray(0, k)), want.slice(0, k), `n=${n}, first ${k}`);
      }
    }
    // distinct random magnitudes too (the selection's pivots on unequal keys)
    const v = Float32Array.from({ length: 3072 }, () => r.random() * 2 - 1);
    const byV = Array.from({ length: 3072 }, (_, i) => i).sort((a, b) => Math.abs(v[a]!) - Math.abs(v[b]!) || a - b);
    for (const k of [2, 768, 3000]) assert.deepEqual(Array.from(mostUncertainFirst(v, 3072, k).subarray(0, k)), byV.slice(0, k), `first ${k}`);
  });
});
