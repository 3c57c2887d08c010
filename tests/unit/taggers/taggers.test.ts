import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildNode, PluginRegistry, UserError, type ComponentNode, type SegSample, type Tagger } from '../../../framework/api.js';
import { registryPackage } from '../../../registry/index.js';
import { plugins as taggerPlugins } from '../../../registry/taggers/index.js';
import { LabelTagsTagger } from '../../../registry/taggers/label-tags/label-tags.js';
import { jsonSyntaxError } from '../../../registry/taggers/tags-file/parse.js';

const reg = new PluginRegistry();
reg.loadPackage(registryPackage);
const build = (node: ComponentNode, baseDir?: string) => buildNode<Tagger>(node, reg, { baseDir, path: 'experiment.tagger' });

const names = ['wall', 'building', 'sky', 'person', 'road'];
// 2x5 label: building x3, sky x3, wall x1, road x1, ignore x2
const label = Uint8Array.from([1, 1, 1, 2, 2, 2, 0, 255, 255, 4]);
const sample = (id: string, extra: Partial<SegSample> = {}): SegSample => ({ id, height: 2, width: 5, image: new Uint8Array(30), label, tags: [], ...extra });
const isUserErr = (...parts: (string | RegExp)[]) => (e: unknown) =>
  e instanceof Error && e.name === 'UserError' && parts.every((p) => (typeof p === 'string' ? e.message.includes(p) : p.test(e.message)));

describe('tagger/label-tags', () => {
  it('tags = classes present (class order), min_fraction over labelled pixels, ignore never a tag; no label -> no tags', async () => {
    const all = await build({ type: 'tagger/label-tags' });
    assert.deepEqual(all.tagsFor(sample('a'), names, 255), ['wall', 'building', 'sky', 'road']);
    const big = await build({ type: 'tagger/label-tags', min_fraction: 0.2 });
    // 8 labelled pixels: wall and road are 1/8 < 0.2; the two ignore pixels do not count
    assert.deepEqual(big.tagsFor(sample('a'), names, 255), ['building', 'sky']);
    assert.deepEqual(big.tagsFor(sample('b', { label: undefined }), names, 255), []);
    // ignore index inside the class range is never a tag
    assert.deepEqual(new LabelTagsTagger({ synonyms: {}, minFraction: 0 }).tagsFromLabel(label, names, 2), ['wall', 'building', 'road']);
  });

  it('tag -> classes through synonyms: defaults, user entries (transitive, case-insensitive), cycles end, defaults can be turned off', async () => {
    const t = await build({ type: 'tagger/label-tags', synonyms: { chapel: 'church', Crowd: ['people', 'man'], a: ['b'], b: ['a', 'sky'], lane: ['street', 'road'] } });
    assert.deepEqual(t.classesForTag('church', names), [1]);
    assert.deepEqual(t.classesForTag(' Chapel ', names), [1]);
    assert.deepEqual(t.classesForTag('crowd', names), [3]);
    assert.deepEqual(t.classesForTag('a', names), [2]);
    assert.deepEqual(t.classesForTag('SKY', names), [2]);
    assert.deepEqual(t.classesForTag('spire', names), []);
    assert.deepEqual([...(t.maskForTag('church', label, names) as Uint8Array)], [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(t.maskForTag('spire', label, names), null);
    const plain = await build({ type: 'tagger/label-tags', use_default_synonyms: false, synonyms: { chapel: 'building' } });
    assert.deepEqual(plain.classesForTag('church', names), []);
    assert.deepEqual(plain.classesForTag('chapel', names), [1]);
    // a tag inheriting two classes gets the union of their masks
    const two = await build({ type: 'tagger/label-tags', synonyms: { outdoors: ['sky', 'road'] } });
    assert.deepEqual([...(two.maskForTag('outdoors', label, names) as Uint8Array)], [0, 0, 0, 1, 1, 1, 0, 0, 0, 1]);
  });

  it('an empty synonym list is a UserError naming the option', async () => {
    await assert.rejects(build({ type: 'tagger/label-tags', synonyms: { chapel: [] } }), isUserErr('experiment.tagger.synonyms.chapel'));
  });

  it('tagger/label-map stays an alias with its camelCase options', async () => {
    const t = await build({ type: 'tagger/label-map', minFraction: 0.2, useDefaultSynonyms: false });
    assert.equal(t.type, 'label-map');
    assert.deepEqual(t.tagsFor(sample('a'), names, 255), ['building', 'sky']);
    assert.deepEqual(t.classesForTag('church', names), []);
  });
});

describe('tagger/fixed and tagger/none', () => {
  it('fixed: the same tags for every sample, masks through synonyms; tags are required', async () => {
    const t = await build({ type: 'tagger/fixed', tags: ['church', ' sky', 'spire'] });
    assert.deepEqual(t.tagsFor(sample('a'), names, 255), ['church', 'sky', 'spire']);
    assert.deepEqual(t.tagsFor(sample('b', { label: undefined }), names, 255), ['church', 'sky', 'spire']);
    assert.deepEqual(t.classesForTag('church', names), [1]);
    assert.equal(t.maskForTag('spire', label, names), null);
    await assert.rejects(build({ type: 'tagger/fixed' }), isUserErr('tags'));
    await assert.rejects(build({ type: 'tagger/fixed', tags: [] }), isUserErr('tags'));
  });

  it('none: the empty prompt, class resolution still available', async () => {
    const t = await build({ type: 'tagger/none', synonyms: { chapel: 'building' } });
    assert.deepEqual(t.tagsFor(sample('a'), names, 255), []);
    assert.deepEqual(t.classesForTag('chapel', names), [1]);
  });
});

describe('tagger/tags-file', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rass-tags-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };

  it('JSON: the three entry forms, threshold (>=), file order, case-insensitive duplicates dropped, lookup by id then file name', async () => {
    write('ram.json', JSON.stringify({
      img1: { church: 0.9, sky: 0.68, tree: 0.5, Church: 0.95 },
      img2: ['person', 'road'],
      'img3.jpg': [{ tag: 'building', score: 0.7 }, { tag: 'cloud', score: 0.2 }, { tag: 'car' }],
    }, null, 2));
    // a relative path resolves against the config's directory (baseDir here)
    const t = await build({ type: 'tagger/tags-file', file: 'ram.json' }, dir);
    assert.deepEqual(t.tagsFor(sample('img1'), names, 255), ['church', 'sky']);
    assert.deepEqual(t.tagsFor(sample('img2'), names, 255), ['person', 'road']);
    assert.deepEqual(t.tagsFor(sample('img3', { file: '/data/images/img3.jpg' }), names, 255), ['building', 'car']);
    const low = await build({ type: 'tagger/tags-file', file: join(dir, 'ram.json'), threshold: 0.3 });
    assert.deepEqual(low.tagsFor(sample('img1'), names, 255), ['church', 'sky', 'tree']);
    assert.deepEqual(low.classesForTag('church', names), [1]);
  });

  it('an image missing from the file is a UserError naming the file and the id', async () => {
    const file = write('few.json', '{"img1": ["sky"]}');
    const t = await build({ type: 'tagger/tags-file', file });
    assert.throws(() => t.tagsFor(sample('ADE_val_7', { file: '/x/ADE_val_7.jpg' }), names, 255), isUserErr(file, '"ADE_val_7"', '"img1"'));
  });

  it('malformed JSON: UserError with the file and the line', async () => {
    const bad = write('bad.json', '{\n  "img1": ["sky"],\n  "img2": ["road",]\n}\n');
    await assert.rejects(build({ type: 'tagger/tags-file', file: bad }), isUserErr(`${bad}:3:`, 'not valid JSON'));
    const score = write('score.json', '{\n  "img1": {"sky": 0.9},\n  "img2": {"road": "high"}\n}\n');
    await assert.rejects(build({ type: 'tagger/tags-file', file: score }), isUserErr(`${score}:3: image "img2"`, 'score must be a number'));
    const shape = write('shape.json', '{\n  "img1": 3\n}\n');
    await assert.rejects(build({ type: 'tagger/tags-file', file: shape }), isUserErr(`${shape}:2: image "img1"`));
    const arr = write('arr.json', '[["sky"]]');
    await assert.rejects(build({ type: 'tagger/tags-file', file: arr }), isUserErr(`${arr}:1:`, 'object mapping image ids'));
  });

  it('the JSON error locator: null exactly when JSON.parse accepts, else the offset of the first fault', () => {
    const good = ['{}', '[]', '{"a": [1, -2.5e3, true, null, "x\\"y"]}', ' "s" ', '0'];
    for (const g of good) assert.equal(jsonSyntaxError(g), null, g);
    const bad: [string, number, RegExp][] = [
      ['{"a": 1,}', 8, /trailing comma/],
      ['{"a" 1}', 5, /":"/],
      ['{"a": [1 2]}', 9, /","/],
      ['{"a": "b', 8, /unterminated/],
      ['{a: 1}', 1, /quoted key/],
      ['{"a": 1} x', 9, /after the JSON/],
      ['{"a": tru}', 6, /unexpected "t"/],
      ['', 0, /end of file/],
    ];
    for (const [text, pos, reason] of bad) {
      assert.throws(() => JSON.parse(text));
      const at = jsonSyntaxError(text);
      assert.ok(at && at.pos === pos && reason.test(at.reason), `${text}: ${JSON.stringify(at)}`);
    }
  });

  it('CSV: header id,tag,score (any column order), quoted fields, comments, threshold', async () => {
    const file = write('ram.csv', '# made by RAM\nscore,id,tag\n0.9,img1,church\n0.5,img1,tree\n0.8,"img,2","potted ""plant"""\n\n0.7,img1,sky\n');
    const t = await build({ type: 'tagger/tags-file', file, threshold: 0.6 });
    assert.deepEqual(t.tagsFor(sample('img1'), names, 255), ['church', 'sky']);
    assert.deepEqual(t.tagsFor(sample('img,2'), names, 255), ['potted "plant"']);
    const noScore = write('plain.csv', 'id,tag\nimg1,sky\n');
    assert.deepEqual((await build({ type: 'tagger/tags-file', file: noScore })).tagsFor(sample('img1'), names, 255), ['sky']);
  });

  it('malformed CSV: UserError with the file and the line', async () => {
    const cases: [string, string, string][] = [
      ['nohead.csv', 'image,label\na,b\n', ':1: the CSV header'],
      ['count.csv', 'id,tag,score\nimg1,sky,0.9\nimg2,road\n', ':3: 2 fields'],
      ['score.csv', 'id,tag,score\nimg1,sky,high\n', ':2: score must be a number'],
      ['quote.csv', 'id,tag\nimg1,"sky\n', ':2: unterminated'],
      ['empty.csv', '\n# nothing\n', ':1: empty tags file'],
      ['tag.csv', 'id,tag\nimg1, \n', ':2: a tag must be'],
    ];
    for (const [name, text, msg] of cases) {
      const file = write(name, text);
      await assert.rejects(build({ type: 'tagger/tags-file', file }), isUserErr(`${file}${msg}`), name);
    }
  });

  it('a missing file is a UserError naming the option and the path', async () => {
    await assert.rejects(build({ type: 'tagger/tags-file', file: 'nope.json' }, dir), isUserErr('experiment.tagger.file', join(dir, 'nope.json')));
  });
});

describe('tagger plugin list', () => {
  it('registry/taggers/index.ts lists one plugin per folder (common/ holds the shared synonym code)', () => {
    const dirs = readdirSync(join(process.cwd(), 'registry/taggers'), { withFileTypes: true }).filter((d) => d.isDirectory() && d.name !== 'common').map((d) => d.name).sort();
    assert.deepEqual(taggerPlugins.map((p) => p.name).sort(), dirs);
  });

  it('UserError is the class thrown (exit code 2)', async () => {
    const e = await build({ type: 'tagger/tags-file', file: '/no/such/tags.json' }).catch((x: unknown) => x);
    assert.ok(e instanceof UserError && e.exitCode === 2);
  });
});
