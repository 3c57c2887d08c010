import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../framework/api.js';
import { flipHorizontal, pad, randomCrop, randomResize, resizeBilinear, resizeNearest } from '../../../registry/datasets/common/augment.js';
import { SegLoader, type SegBatch } from '../../../registry/datasets/common/loader.js';
import { ShapesDataset } from '../../../registry/datasets/shapes/shapes.js';
import { LabelMapTagger, labelMapTagger } from '../../../registry/taggers/label-map/plugin.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../../framework/api.js';
import type { SegDataset } from '../../../framework/contracts/dataset.js';
import { imageFolder } from '../../../registry/datasets/image-folder/plugin.js';
import { ctx, rgbPattern, tmp, writeRgb } from './_tree.js';

const ds = new ShapesDataset({ length: 10, height: 48, width: 64, numClasses: 9, maxObjects: 4, seed: 2 });

describe('augmentation', () => {
  it('resize: bilinear of a linear ramp stays linear, nearest keeps label values', () => {
    const src = Uint8Array.from([0, 100, 200, 250]); // 1x4 ramp, 1 channel
    const up = resizeBilinear(src, 1, 4, 1, 1, 8);
    // half-pixel centres: output x maps to (x+0.5)/2-0.5, clamped at the borders
    assert.deepEqual([...up], [0, 25, 75, 125, 175, 213, 238, 250]);
    const lab = Uint8Array.from([3, 7, 255, 1]);
    assert.deepEqual([...resizeNearest(lab, 2, 2, 4, 4)], [3, 3, 7, 7, 3, 3, 7, 7, 255, 255, 1, 1, 255, 255, 1, 1]);
  });

  it('random resize keeps the aspect ratio within the scale range; crop respects catMaxRatio; pad uses ignore', () => {
    const s = ds.generate(0);
    const r = randomResize(s, Rng.derive(1, 'a'), [128, 64], [0.5, 2]);
    assert.ok(Math.abs(r.width / r.height - 64 / 48) < 0.05);
    assert.ok(r.height >= 24 && r.height <= 128);
    // a label with a dominant class: the crop must find a window where no class reaches 75 %
    const H = 20;
    const W = 20;
    const label = new Uint8Array(H * W).fill(0);
    for (let y = 0; y < H; y++) for (let x = 0; x < 10; x++) label[y * W + x] = 1; // left half is class 1
    const img = new Uint8Array(H * W * 3);
    // 3 of the 13 horizontal offsets give a balanced 8x8 window: ~23 % by chance, ~93 % with 10 retries
    const rate = (ratio: number) => {
      let hits = 0;
      for (let t = 0; t < 40; t++) {
        const c = randomCrop({ image: img, label, height: H, width: W }, Rng.derive(t, 'c'), 8, 8, ratio, 255);
        const ones = (c.label as Uint8Array).filter((v) => v === 1).length;
        if (ones / 64 > 0.25 && ones / 64 < 0.75) hits++;
      }
      return hits / 40;
    };
    assert.ok(rate(0.75) >= 0.8, `cat_max_ratio crop found balanced windows ${rate(0.75)}`);
    assert.ok(rate(1) <= 0.45, `without cat_max_ratio balanced windows are rare: ${rate(1)}`);
    const p = pad({ image: new Uint8Array(2 * 2 * 3).fill(9), label: new Uint8Array(4).fill(1), height: 2, width: 2 }, 3, 3, 255);
    assert.deepEqual([...(p.label as Uint8Array)], [1, 1, 255, 1, 1, 255, 255, 255, 255]);
    assert.deepEqual([...p.image.subarray(0, 9)], [9, 9, 9, 9, 9, 9, 0, 0, 0]);
    const f = flipHorizontal({ image: Uint8Array.from([1, 2, 3, 4, 5, 6]), label: Uint8Array.from([7, 8]), height: 1, width: 2 });
    assert.deepEqual([...f.image], [4, 5, 6, 1, 2, 3]);
    assert.deepEqual([...(f.label as Uint8Array)], [8, 7]);
  });
});

describe('loader', () => {
  it('seeded per-epoch order, deterministic augmentation independent of prefetch depth, full coverage', async () => {
    const aug = { scale: [96, 48] as [number, number], ratioRange: [0.5, 2] as [number, number], crop: [32, 32] as [number, number], catMaxRatio: 0.75, flipProb: 0.5, photometric: true };
    const l1 = new SegLoader(ds, { batchSize: 3, seed: 4, augment: aug, prefetch: 1 });
    const l2 = new SegLoader(ds, { batchSize: 3, seed: 4, augment: aug, prefetch: 4 });
    const b1 = [];
    for await (const b of l1.epoch(0)) b1.push(b);
    const b2 = [];
    for await (const b of l2.epoch(0)) b2.push(b);
    assert.equal(b1.length, 4);
    assert.deepEqual(b1.flatMap((b) => b.indices).sort((a, b) => a - b), [...Array(10).keys()]);
    assert.deepEqual(b1.map((b) => b.indices), b2.map((b) => b.indices));
    for (let i = 0; i < b1.length; i++) {
      assert.deepEqual(b1[i].images, b2[i].images);
      assert.deepEqual(b1[i].labels, b2[i].labels);
      assert.equal(b1[i].height, 32);
    }
    assert.notDeepEqual(l1.order(0), l1.order(1));
    // resuming at batch 2 yields exactly the remaining batches
    const resumed = [];
    for await (const b of l2.epoch(0, 2)) resumed.push(b);
    assert.deepEqual(resumed.map((b) => b.images), b1.slice(2).map((b) => b.images));
    const ordered = new SegLoader(ds, { batchSize: 4, seed: 4, shuffle: false, dropLast: true });
    const ob = [];
    for await (const b of ordered.epoch(0)) ob.push(b.indices);
    assert.deepEqual(ob, [[0, 1, 2, 3], [4, 5, 6, 7]]);
  });
});

describe('label-map tagger', () => {
  it('tags from label maps and tag -> class masks through the synonym map', async () => {
    const t = (await labelMapTagger.create({ synonyms: { chapel: 'church', kids: ['child'] }, useDefaultSynonyms: true, minFraction: 0.2 } as never, ctx() as never)) as LabelMapTagger;
    const names = ['wall', 'building', 'sky', 'person'];
    const label = Uint8Array.from([1, 1, 1, 2, 2, 2, 0, 255, 255, 255]);
    // wall covers 1/7 < 0.2 of the labelled pixels -> not a tag; ignore pixels do not count
    assert.deepEqual(t.tagsFromLabel(label, names, 255), ['building', 'sky']);
    assert.deepEqual(t.classesForTag('church', names), [1]);
    assert.deepEqual(t.classesForTag('Chapel', names), [1]); // chapel -> church -> building
    assert.deepEqual(t.classesForTag('kids', names), [3]);
    assert.deepEqual(t.classesForTag('unicorn', names), []);
    assert.deepEqual([...(t.maskForTag('church', label, names) as Uint8Array)], [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(t.maskForTag('unicorn', label, names), null);
    const cyc = new LabelMapTagger({ synonyms: { a: ['b'], b: ['a', 'sky'] }, minFraction: 0 });
    assert.deepEqual(cyc.classesForTag('a', names), [2]);
  });
});

describe('loader worker threads', () => {
  it('workers produce the same batches as the in-process loader; errors keep file and reason', async () => {
    const aug = { scale: [96, 48] as [number, number], ratioRange: [0.5, 2] as [number, number], crop: [32, 32] as [number, number], catMaxRatio: 0.75, flipProb: 0.5, photometric: true };
    const inproc = new SegLoader(ds, { batchSize: 4, seed: 9, augment: aug });
    const threaded = new SegLoader(ds, { batchSize: 4, seed: 9, augment: aug, workers: 2, prefetch: 3 });
    try {
      const a: SegBatch[] = [];
      for await (const b of inproc.epoch(1)) a.push(b);
      const b: SegBatch[] = [];
      for await (const x of threaded.epoch(1)) b.push(x);
      assert.equal(a.length, b.length);
      a.forEach((x, i) => {
        assert.deepEqual(x.images, b[i].images);
        assert.deepEqual(x.labels, b[i].labels);
        assert.deepEqual(x.tags, b[i].tags);
      });
    } finally {
      await threaded.close();
    }
    const root = tmp('worker-bad');
    await writeRgb(join(root, 'img/a.png'), rgbPattern(4, 3, 1), 4, 3);
    writeFileSync(join(root, 'img/b.png'), 'broken');
    const folder = (await imageFolder.create({ images: join(root, 'img'), labelEncoding: 'identity', labelsOptional: false, recursive: false } as never, ctx() as never)) as SegDataset;
    const bad = new SegLoader(folder, { batchSize: 1, seed: 1, shuffle: false, workers: 1 });
    try {
      const it = bad.epoch(0);
      assert.equal((await it.next()).value?.ids[0], 'a');
      await assert.rejects(it.next(), (e: unknown) => e instanceof UserError && e.message.includes(join(root, 'img/b.png')) && e.message.includes('cannot read image'));
    } finally {
      await bad.close();
    }
  });
});
