import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../../framework/api.js';
import type { SegDataset } from '../../../framework/contracts/dataset.js';
import { ADE20K_CLASSES, CITYSCAPES_CLASSES } from '../../../registry/datasets/common/class-names.js';
import { ade20k } from '../../../registry/datasets/ade20k/plugin.js';
import { cityscapes } from '../../../registry/datasets/cityscapes/plugin.js';
import { imageFolder } from '../../../registry/datasets/image-folder/plugin.js';
import { pairedFolder } from '../../../registry/datasets/paired-folder/plugin.js';
import { reallq } from '../../../registry/datasets/reallq/plugin.js';
import { ctx, rgbPattern, tmp, writeGrey, writeRgb } from './_tree.js';

const W = 4;
const H = 3;

async function build(plugin: { create(o: never, c: never): unknown }, opts: Record<string, unknown>): Promise<SegDataset> {
  return (await plugin.create(opts as never, ctx() as never)) as SegDataset;
}

async function rejectsWith(p: Promise<unknown> | (() => unknown), ...parts: string[]): Promise<void> {
  await assert.rejects(async () => (typeof p === 'function' ? p() : p), (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${String(e)}`);
    for (const part of parts) assert.ok(e.message.includes(part), `"${e.message}" should mention "${part}"`);
    return true;
  });
}

describe('ade20k', () => {
  it('has the 150 standard class names', () => {
    assert.equal(ADE20K_CLASSES.length, 150);
    assert.equal(new Set(ADE20K_CLASSES).size, 150);
    assert.deepEqual(ADE20K_CLASSES.slice(0, 5), ['wall', 'building', 'sky', 'floor', 'tree']);
    assert.equal(ADE20K_CLASSES[149], 'flag');
    assert.equal(CITYSCAPES_CLASSES.length, 19);
  });

  it('reads the ADEChallengeData2016 layout with reduce-zero-label and tags', async () => {
    const root = tmp('ade');
    // stored values: 0 (other -> ignore), 1 (wall -> 0), 2 (building -> 1), 150 (flag -> 149)
    const raw = Uint8Array.from([0, 1, 2, 150, 1, 1, 2, 2, 0, 0, 150, 1]);
    await writeRgb(join(root, 'images/validation/ADE_val_00000001.jpg'), rgbPattern(W, H, 1), W, H);
    await writeGrey(join(root, 'annotations/validation/ADE_val_00000001.png'), raw, W, H);
    await writeRgb(join(root, 'images/validation/ADE_val_00000002.png'), rgbPattern(W, H, 2), W, H);
    await writeGrey(join(root, 'annotations/validation/ADE_val_00000002.png'), new Uint8Array(W * H).fill(3), W, H);
    const ds = await build(ade20k, { root, split: 'validation' });
    assert.equal(ds.length, 2);
    assert.equal(ds.classNames.length, 150);
    const s = await ds.get(0);
    assert.equal(s.id, 'ADE_val_00000001');
    assert.equal(s.width, W);
    assert.equal(s.height, H);
    assert.deepEqual([...(s.label as Uint8Array)], [255, 0, 1, 149, 0, 0, 1, 1, 255, 255, 149, 0]);
    assert.deepEqual(s.tags, ['wall', 'building', 'flag']);
    const s2 = await ds.get(1);
    // lossless PNG image: pixels come back exactly
    assert.deepEqual([...s2.image.subarray(0, 6)], [0, 0, 2, 10, 0, 2]);
    assert.deepEqual(s2.tags, ['sky']);
  });

  it('malformed trees: missing label, size mismatch, out-of-range value, unreadable file', async () => {
    const root = tmp('ade-bad');
    await writeRgb(join(root, 'images/training/a.png'), rgbPattern(W, H, 1), W, H);
    await rejectsWith(() => build(ade20k, { root, split: 'training' }), join(root, 'annotations/training'), 'label folder does not exist');
    mkdirSync(join(root, 'annotations/training'), { recursive: true });
    await rejectsWith(() => build(ade20k, { root, split: 'training' }), join(root, 'annotations/training/a.png'), 'label file missing');

    await writeGrey(join(root, 'annotations/training/a.png'), new Uint8Array(6), 3, 2);
    await rejectsWith((await build(ade20k, { root, split: 'training' })).get(0), join(root, 'annotations/training/a.png'), '3x2', '4x3');

    await writeGrey(join(root, 'annotations/training/a.png'), Uint8Array.from([1, 1, 1, 1, 1, 151, 1, 1, 1, 1, 1, 1]), W, H);
    await rejectsWith((await build(ade20k, { root, split: 'training' })).get(0), 'a.png', 'label value 151', 'x=1, y=1');

    await writeGrey(join(root, 'annotations/training/a.png'), new Uint8Array(W * H).fill(1), W, H);
    writeFileSync(join(root, 'images/training/a.png'), 'not a png');
    await rejectsWith((await build(ade20k, { root, split: 'training' })).get(0), join(root, 'images/training/a.png'), 'cannot read image');

    await rejectsWith(() => build(ade20k, { root: join(root, 'nowhere'), split: 'training' }), 'does not exist');
  });

  it('refuses RGB label maps (colours are not class indices)', async () => {
    const root = tmp('ade-rgb');
    await writeRgb(join(root, 'images/validation/a.png'), rgbPattern(W, H, 1), W, H);
    await writeRgb(join(root, 'annotations/validation/a.png'), rgbPattern(W, H, 1), W, H);
    await rejectsWith((await build(ade20k, { root, split: 'validation' })).get(0), 'single-channel', 'a.png');
  });
});

describe('cityscapes', () => {
  it('pairs leftImg8bit with gtFine labelTrainIds, keeps 255 as ignore, refuses ids >= 19', async () => {
    const root = tmp('city');
    const stem = 'aachen_000000_000019';
    await writeRgb(join(root, `leftImg8bit/val/aachen/${stem}_leftImg8bit.png`), rgbPattern(W, H, 5), W, H);
    await writeGrey(join(root, `gtFine/val/aachen/${stem}_gtFine_labelTrainIds.png`), Uint8Array.from([0, 1, 2, 255, 18, 18, 13, 13, 255, 0, 0, 0]), W, H);
    // a colour label file beside it must not be picked up
    await writeRgb(join(root, `gtFine/val/aachen/${stem}_gtFine_color.png`), rgbPattern(W, H, 1), W, H);
    const ds = await build(cityscapes, { root, split: 'val' });
    assert.equal(ds.length, 1);
    const s = await ds.get(0);
    assert.equal(s.id, stem);
    assert.deepEqual([...(s.label as Uint8Array)], [0, 1, 2, 255, 18, 18, 13, 13, 255, 0, 0, 0]);
    assert.deepEqual(s.tags, ['road', 'sidewalk', 'building', 'car', 'bicycle']);
    await writeGrey(join(root, `gtFine/val/aachen/${stem}_gtFine_labelTrainIds.png`), new Uint8Array(W * H).fill(19), W, H);
    await rejectsWith((await build(cityscapes, { root, split: 'val' })).get(0), `${stem}_gtFine_labelTrainIds.png`, 'label value 19', '19 classes');
  });
});

describe('reallq / image-folder / paired-folder', () => {
  it('reallq: ADE20K label space in a configurable layout, nested folders', async () => {
    const root = tmp('reallq');
    await writeRgb(join(root, 'lq/sub/x.png'), rgbPattern(W, H, 1), W, H);
    await writeGrey(join(root, 'gt/sub/x.png'), new Uint8Array(W * H).fill(13), W, H);
    const ds = await build(reallq, { root, images: 'lq', labels: 'gt', labelEncoding: 'reduce-zero-label', recursive: true });
    const s = await ds.get(0);
    assert.equal(ds.classNames[12], 'person');
    assert.ok((s.label as Uint8Array).every((v) => v === 12));
    assert.deepEqual(s.tags, ['person']);
  });

  it('image-folder: with and without labels, custom classes, tags file', async () => {
    const root = tmp('folder');
    await writeRgb(join(root, 'img/a.png'), rgbPattern(W, H, 1), W, H);
    await writeRgb(join(root, 'img/b.png'), rgbPattern(W, H, 2), W, H);
    const unlabeled = await build(imageFolder, { images: join(root, 'img') });
    const u = await unlabeled.get(1);
    assert.equal(u.label, undefined);
    assert.deepEqual(u.tags, []);
    await writeGrey(join(root, 'lab/a.png'), Uint8Array.from([0, 0, 1, 1, 1, 1, 255, 255, 0, 0, 0, 0]), W, H);
    await rejectsWith(() => build(imageFolder, { images: join(root, 'img'), labels: join(root, 'lab'), classNames: ['cat', 'dog'] }), 'b.png', 'label file missing');
    const partial = await build(imageFolder, { images: join(root, 'img'), labels: join(root, 'lab'), classNames: ['cat', 'dog'], labelsOptional: true });
    const a = await partial.get(0);
    assert.deepEqual(a.tags, ['cat', 'dog']);
    assert.equal((await partial.get(1)).label, undefined);
    await writeGrey(join(root, 'lab/b.png'), new Uint8Array(W * H).fill(2), W, H);
    await rejectsWith((await build(imageFolder, { images: join(root, 'img'), labels: join(root, 'lab'), classNames: ['cat', 'dog'] })).get(1), 'b.png', 'label value 2');
    writeFileSync(join(root, 'tags.json'), JSON.stringify({ a: ['church', 'sky'] }));
    const tagged = await build(imageFolder, { images: join(root, 'img'), tagsFile: join(root, 'tags.json') });
    assert.deepEqual((await tagged.get(0)).tags, ['church', 'sky']);
    assert.deepEqual((await tagged.get(1)).tags, []);
    writeFileSync(join(root, 'bad.json'), '{"a": "sky"}');
    await rejectsWith(() => build(imageFolder, { images: join(root, 'img'), tagsFile: join(root, 'bad.json') }), 'bad.json', 'array of strings');
  });

  it('paired-folder: DIV2K-style x4 suffix pairs HQ with LQ; a missing LQ is named', async () => {
    const root = tmp('pairs');
    await writeRgb(join(root, 'HR/0001.png'), rgbPattern(8, 8, 1), 8, 8);
    await writeRgb(join(root, 'LR/0001x4.png'), rgbPattern(2, 2, 1), 2, 2);
    const ds = await build(pairedFolder, { hq: join(root, 'HR'), lq: join(root, 'LR'), lqSuffix: 'x4', hqSuffix: '' });
    const s = await ds.get(0);
    assert.equal(s.id, '0001');
    assert.equal(s.width, 8);
    assert.equal(s.lq?.width, 2);
    assert.equal(s.lq?.image.length, 12);
    mkdirSync(join(root, 'HR2'));
    await writeRgb(join(root, 'HR2/0002.png'), rgbPattern(8, 8, 1), 8, 8);
    await rejectsWith(() => build(pairedFolder, { hq: join(root, 'HR2'), lq: join(root, 'LR'), lqSuffix: 'x4', hqSuffix: '' }), '0002x4', 'LQ image missing');
  });
});
