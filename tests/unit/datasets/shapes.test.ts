import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../framework/api.js';
import { shapes } from '../../../registry/datasets/shapes/plugin.js';
import { SHAPES_CLASSES, ShapesDataset } from '../../../registry/datasets/shapes/shapes.js';
import { ctx } from './_tree.js';

const mk = (o: Partial<ConstructorParameters<typeof ShapesDataset>[0]> = {}) =>
  new ShapesDataset({ length: 50, height: 64, width: 64, numClasses: SHAPES_CLASSES.length, maxObjects: 5, seed: 11, ...o });

/** Greyscale float image. */
function grey(img: Uint8Array, n: number): Float32Array {
  const g = new Float32Array(n);
  for (let i = 0; i < n; i++) g[i] = 0.299 * img[i * 3] + 0.587 * img[i * 3 + 1] + 0.114 * img[i * 3 + 2];
  return g;
}

/** Separable Gaussian blur (sigma) plus seeded Gaussian noise (std) -- a stand-in for the degradation pipeline. */
function degrade(g: Float32Array, H: number, W: number, sigma: number, noise: number, rng: Rng): Float32Array {
  const r = Math.ceil(3 * sigma);
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const ks = k.reduce((a, b) => a + b, 0);
  const tmp = new Float32Array(H * W);
  const out = new Float32Array(H * W);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let s = 0;
    for (let j = -r; j <= r; j++) s += k[j + r] * g[y * W + Math.min(W - 1, Math.max(0, x + j))];
    tmp[y * W + x] = s / ks;
  }
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let s = 0;
    for (let j = -r; j <= r; j++) s += k[j + r] * tmp[Math.min(H - 1, Math.max(0, y + j)) * W + x];
    out[y * W + x] = s / ks + rng.normal(0, noise);
  }
  return out;
}

/**
 * Fixed (non-learned) texture features per pixel: mean absolute differences in 4 directions at
 * lags 1 and 2 over a 7x7 window, divided by the local standard deviation (so contrast and
 * colour do not matter -- only texture does).
 */
function features(g: Float32Array, H: number, W: number, x: number, y: number): number[] {
  const f = new Array<number>(8).fill(0);
  let m = 0;
  let m2 = 0;
  let n = 0;
  const dirs = [[1, 0], [0, 1], [1, 1], [1, -1], [2, 0], [0, 2], [2, 2], [2, -2]];
  for (let dy = -3; dy <= 3; dy++) for (let dx = -3; dx <= 3; dx++) {
    const v = g[(y + dy) * W + x + dx];
    m += v;
    m2 += v * v;
    n++;
    dirs.forEach(([a, b], i) => {
      f[i] += Math.abs(v - g[(y + dy + b) * W + x + dx + a]);
    });
  }
  const sd = Math.sqrt(Math.max(m2 / n - (m / n) ** 2, 1e-6)) + 2;
  return f.map((v) => v / n / sd);
}

function interiorPixels(label: Uint8Array, H: number, W: number): number[] {
  const out: number[] = [];
  for (let y = 6; y < H - 6; y += 2) for (let x = 6; x < W - 6; x += 2) {
    const c = label[y * W + x];
    let same = true;
    for (let dy = -5; dy <= 5 && same; dy++) for (let dx = -5; dx <= 5; dx++) if (label[(y + dy) * W + x + dx] !== c) { same = false; break; }
    if (same) out.push(y * W + x);
  }
  return out;
}

describe('shapes dataset', () => {
  it('is deterministic by (seed, index), any size, labels/tags consistent', async () => {
    const a = mk();
    const b = await shapes.create({ length: 50, height: 64, width: 64, numClasses: SHAPES_CLASSES.length, maxObjects: 5, seed: 11 } as never, ctx() as never);
    const s1 = a.generate(7);
    const s2 = await b.get(7);
    assert.deepEqual(s1.image, s2.image);
    assert.deepEqual(s1.label, s2.label);
    assert.notDeepEqual(a.generate(8).label, s1.label);
    assert.notDeepEqual(mk({ seed: 12 }).generate(7).image, s1.image);
    const big = mk({ height: 40, width: 100 }).generate(3);
    assert.equal(big.image.length, 40 * 100 * 3);
    assert.equal(big.label?.length, 4000);
    for (let i = 0; i < 20; i++) {
      const s = a.generate(i);
      const present = new Set(s.label);
      for (const v of present) assert.ok(v < SHAPES_CLASSES.length);
      assert.deepEqual(s.tags, SHAPES_CLASSES.filter((_, c) => c > 0 && present.has(c)));
      assert.ok(s.tags.length >= 1, `sample ${i} has no objects`);
    }
    const few = mk({ numClasses: 3 });
    assert.deepEqual(few.classNames, ['background', 'stripes-h', 'stripes-v']);
    for (let i = 0; i < 10; i++) assert.ok((few.generate(i).label as Uint8Array).every((v) => v < 3));
  });

  it('degradation measurably hurts a fixed texture classifier (texture, not colour, carries the class)', () => {
    const H = 64;
    const W = 64;
    const ds = mk({ length: 60 });
    const C = SHAPES_CLASSES.length;
    const dim = 8;
    // nearest-centroid "classifier": class means of the fixed features on 30 clean images
    const sum = Array.from({ length: C }, () => new Float64Array(dim));
    const cnt = new Float64Array(C);
    for (let i = 0; i < 30; i++) {
      const s = ds.generate(i);
      const g = grey(s.image, H * W);
      for (const p of interiorPixels(s.label as Uint8Array, H, W)) {
        const c = (s.label as Uint8Array)[p];
        features(g, H, W, p % W, Math.floor(p / W)).forEach((v, k) => (sum[c][k] += v));
        cnt[c]++;
      }
    }
    const cent = sum.map((s, c) => Array.from(s, (v) => v / Math.max(cnt[c], 1)));
    const classify = (f: number[]) => {
      let best = 0;
      let bd = Infinity;
      cent.forEach((m, c) => {
        if (!cnt[c]) return;
        const d = m.reduce((a, v, k) => a + (v - f[k]) ** 2, 0);
        if (d < bd) [bd, best] = [d, c];
      });
      return best;
    };
    let n = 0;
    let okClean = 0;
    let okDeg = 0;
    const rng = Rng.derive(5, 'test-degrade');
    for (let i = 30; i < 60; i++) {
      const s = ds.generate(i);
      const g = grey(s.image, H * W);
      const d = degrade(g, H, W, 1.5, 8, rng);
      for (const p of interiorPixels(s.label as Uint8Array, H, W)) {
        const c = (s.label as Uint8Array)[p];
        const x = p % W;
        const y = Math.floor(p / W);
        n++;
        if (classify(features(g, H, W, x, y)) === c) okClean++;
        if (classify(features(d, H, W, x, y)) === c) okDeg++;
      }
    }
    const clean = okClean / n;
    const deg = okDeg / n;
    console.log(`shapes texture classifier: clean ${(clean * 100).toFixed(1)}%, blur1.5+noise8 ${(deg * 100).toFixed(1)}% over ${n} pixels (chance ${(100 / C).toFixed(1)}%)`);
    assert.ok(clean > 0.5, `clean accuracy ${clean} should be well above chance`);
    assert.ok(clean - deg > 0.2, `degradation should cost > 20 points: clean ${clean}, degraded ${deg}`);
  });
});
