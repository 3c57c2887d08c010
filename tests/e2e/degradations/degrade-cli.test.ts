/**
 * `rass degrade` end to end on a small dataset tree with a corrupt image: --on-error stop and
 * skip, labels copied byte for byte, resume (second run skips everything), determinism per
 * file across runs and output folders, the params record, and no temporary files left behind.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { pluginPackage } from '../../../framework/api.js';
import { plugins } from '../../../registry/degradations/index.js';
import { runCliCaptured } from '../../helpers/cli.js';
import { degradeCommand, globToRegExp, pathSampleIndex } from '../../../registry/degradations/commands/degrade.js';

// only this area's plugins and command: the test does not depend on other areas' plugins
// (registration in registry/index.ts is checked by tests/unit/degradations/registration.test.ts)
const registryPackage = pluginPackage({ name: 'rass/degradations', plugins, commands: [degradeCommand] });

const PIPELINE = resolve('configs/_base_/degradations/rass-full.yaml');

const cli = (args: string[]) => runCliCaptured(args, [registryPackage]);

function allFiles(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(join(dir, e.name), base) : [join(dir, e.name).slice(base.length + 1)])).sort();
}

async function writeImage(file: string, w: number, h: number, seed: number, fmt: 'png' | 'jpeg'): Promise<void> {
  const d = Buffer.alloc(w * h * 3);
  for (let i = 0; i < d.length; i++) d[i] = (i * 7 + seed * 31 + ((i / 3 / w) | 0) * 5) % 256;
  const img = sharp(d, { raw: { width: w, height: h, channels: 3 } });
  writeFileSync(file, await (fmt === 'png' ? img.png() : img.jpeg({ quality: 90 })).toBuffer());
}

describe('rass degrade (e2e)', () => {
  let root: string;
  let input: string;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'rass-degrade-'));
    input = join(root, 'ade');
    mkdirSync(join(input, 'images/validation/sub'), { recursive: true });
    mkdirSync(join(input, 'annotations/validation'), { recursive: true });
    await writeImage(join(input, 'images/validation/a.png'), 48, 40, 1, 'png');
    await writeImage(join(input, 'images/validation/b.jpg'), 40, 40, 2, 'jpeg');
    await writeImage(join(input, 'images/validation/sub/c.png'), 36, 44, 3, 'png');
    writeFileSync(join(input, 'images/validation/corrupt.jpg'), Buffer.from('not a jpeg at all'));
    await writeImage(join(input, 'annotations/validation/a.png'), 48, 40, 4, 'png');
    writeFileSync(join(input, 'meta.json'), '{"classes": 150}\n');
    mkdirSync(join(input, 'extra'), { recursive: true });
    await writeImage(join(input, 'extra/mask_a.png'), 8, 8, 5, 'png');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('--on-error stop fails naming the corrupt file and leaves no temporary file', async () => {
    const out = join(root, 'stop');
    const r = await cli(['degrade', '--pipeline', PIPELINE, '--input', input, '--output', out, '--seed', '3', '--on-error', 'stop']);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /corrupt\.jpg/);
    assert.ok(!allFiles(out).some((f) => /\.tmp-\d+$/.test(f)), 'no temp files');
    assert.ok(!existsSync(join(out, 'images/validation/corrupt.png')));
  });

  it('--on-error skip degrades the rest, copies labels unchanged, records params, lists skipped files; a second run resumes', async () => {
    const out = join(root, 'skip');
    const record = join(root, 'params.jsonl');
    // a stale temp file of an interrupted run is cleaned up
    mkdirSync(join(out, 'images/validation'), { recursive: true });
    writeFileSync(join(out, 'images/validation/a.png.tmp-99999'), 'partial');
    const args = ['degrade', '--pipeline', PIPELINE, '--input', input, '--output', out, '--seed', '3', '--on-error', 'skip', '--record', record, '--labels-glob', 'extra/mask_*.png'];
    const r = await cli(args);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /skipped files:\n\s+images\/validation\/corrupt\.jpg: .*corrupt\.jpg/);
    assert.deepEqual(allFiles(out), [
      'annotations/validation/a.png', 'extra/mask_a.png', 'images/validation/a.png', 'images/validation/b.png', 'images/validation/sub/c.png', 'meta.json',
    ]);
    for (const f of ['annotations/validation/a.png', 'meta.json', 'extra/mask_a.png']) assert.deepEqual(readFileSync(join(out, f)), readFileSync(join(input, f)), `${f} copied unchanged`);
    // degraded images keep their size (scale 1) and differ from the input
    const a = await sharp(join(out, 'images/validation/a.png')).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([a.info.width, a.info.height], [48, 40]);
    const a0 = await sharp(join(input, 'images/validation/a.png')).raw().toBuffer();
    assert.notDeepEqual(a.data, a0);
    const lines = readFileSync(record, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.file).sort(), ['images/validation/a.png', 'images/validation/b.jpg', 'images/validation/sub/c.png']);
    assert.equal(lines[0].sampleIndex, pathSampleIndex(lines[0].file));
    assert.ok('blur1' in lines[0].params && 'jpeg1' in lines[0].params);

    const mtime = statSync(join(out, 'images/validation/a.png')).mtimeMs;
    const again = await cli(args);
    assert.equal(again.code, 0);
    assert.match(again.out, /done: 0 degraded, 3 already present/);
    assert.equal(statSync(join(out, 'images/validation/a.png')).mtimeMs, mtime);

    // determinism: a deleted output is re-created identically; another output folder gets the same bytes
    const before = readFileSync(join(out, 'images/validation/b.png'));
    rmSync(join(out, 'images/validation/b.png'));
    assert.equal((await cli(args)).code, 0);
    assert.deepEqual(readFileSync(join(out, 'images/validation/b.png')), before);
    const out2 = join(root, 'skip2');
    assert.equal((await cli(['degrade', '--pipeline', PIPELINE, '--input', input, '--output', out2, '--seed', '3', '--on-error', 'skip'])).code, 0);
    for (const f of ['images/validation/a.png', 'images/validation/b.png', 'images/validation/sub/c.png']) assert.deepEqual(readFileSync(join(out2, f)), readFileSync(join(out, f)), f);
    const out3 = join(root, 'seed4');
    assert.equal((await cli(['degrade', '--pipeline', PIPELINE, '--input', input, '--output', out3, '--seed', '4', '--on-error', 'skip'])).code, 0);
    assert.notDeepEqual(readFileSync(join(out3, 'images/validation/a.png')), readFileSync(join(out, 'images/validation/a.png')));
  });

  it('a third-party degradation loads through the pipeline file\'s plugins: list (the CLI\'s registry, not a private one)', async () => {
    const dir = join(root, 'third-party');
    mkdirSync(join(dir, 'invert'), { recursive: true });
    writeFileSync(join(dir, 'invert', 'index.js'), [
      'export default (rass) => rass.pluginPackage({ name: "invert-degradation", plugins: [rass.definePlugin({',
      '  kind: "degradation", name: "invert", description: "1 - x", schema: { type: "object", properties: {} },',
      '  create: (_o, ctx) => ({ id: ctx.path, apply: async (x) => rass.tf.sub(1, x) }),',
      '})] });',
    ].join('\n'));
    const pipeline = join(dir, 'invert.yaml');
    writeFileSync(pipeline, 'plugins: [./invert]\ntype: degradation/pipeline\nstages:\n  - { id: inv, type: degradation/invert }\n');
    const out = join(root, 'inverted');
    const r = await cli(['degrade', '--pipeline', pipeline, '--input', input, '--output', out, '--on-error', 'skip', '--backend', 'wasm']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /degrade: backend wasm/);
    const a = await sharp(join(out, 'images/validation/a.png')).raw().toBuffer();
    const a0 = await sharp(join(input, 'images/validation/a.png')).raw().toBuffer();
    assert.equal(a.length, a0.length);
    for (let i = 0; i < a.length; i++) assert.equal(a[i], 255 - a0[i], `pixel byte ${i}`);
    // an unknown plugin type names the file and the line
    writeFileSync(pipeline, 'type: degradation/pipeline\nstages:\n  - { id: inv, type: degradation/invert }\n');
    const bad = await cli(['degrade', '--pipeline', pipeline, '--input', input, '--output', join(root, 'inverted2'), '--backend', 'wasm']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /invert\.yaml:3:\d+ stages\[0\]\.type: .*degradation\/invert/);
  });

  it('rejects bad options with a clear message', async () => {
    const r = await cli(['degrade', '--pipeline', PIPELINE, '--input', join(root, 'missing'), '--output', join(root, 'x')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /missing: not a directory/);
    const bad = join(root, 'bad.yaml');
    writeFileSync(bad, 'type: loss/mse\n');
    const r2 = await cli(['degrade', '--pipeline', bad, '--input', input, '--output', join(root, 'y')]);
    assert.equal(r2.code, 2);
    assert.match(r2.err, /bad\.yaml: expected a degradation component node/);
  });

  it('label globs and sample indices', () => {
    assert.ok(globToRegExp('extra/mask_*.png').test('extra/mask_a.png'));
    assert.ok(!globToRegExp('extra/mask_*.png').test('extra/sub/mask_a.png'));
    assert.ok(globToRegExp('**/*.json').test('a/b/c.json'));
    assert.ok(globToRegExp('**/*.json').test('c.json'));
    // FNV-1a 32-bit of the UTF-8 path, top bit cleared: the published test vectors ('' 0x811c9dc5,
    // 'a' 0xe40c292c, 'foobar' 0xbf9cf968) and two paths hashed by a Python FNV-1a
    for (const [path, fnv] of [['', 0x811c9dc5], ['a', 0xe40c292c], ['foobar', 0xbf9cf968], ['images/a.png', 0x2cc4c37e], ['images/validation/sub/é.png', 0x673d88a6]] as const) {
      assert.equal(pathSampleIndex(path), fnv & 0x7fffffff, path);
    }
    assert.notEqual(pathSampleIndex('images/a.png'), pathSampleIndex('images/b.png'));
  });
});
