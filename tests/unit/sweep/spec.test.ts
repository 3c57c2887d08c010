import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandSweep, parseSweepSpec, formatOverrides, trialId } from '../../../framework/sweep/spec.js';

test('grid x zip x variants x repeats multiplies out in order, last axis fastest', () => {
  const spec = parseSweepSpec({
    grid: { 'experiment.rank': [2, 4] },
    zip: [{ 'experiment.lr': [0.1, 0.2, 0.3], 'experiment.warmup': [10, 20, 30] }],
    variants: { prior: { none: { 'experiment.scr': null }, scr: { 'experiment.scr.path': 'a/b', 'experiment.merge': true } } },
    repeats: 2,
  });
  const trials = expandSweep(spec, 5);
  assert.equal(trials.length, 2 * 3 * 2 * 2);
  assert.deepEqual(trials[0].overrides, [['experiment.rank', 2], ['experiment.lr', 0.1], ['experiment.warmup', 10], ['experiment.scr', null], ['seed', 5]]);
  assert.deepEqual(trials[1].overrides.at(-1), ['seed', 6]);
  assert.deepEqual(trials[2].labels, { 'experiment.rank': '2', 'experiment.lr': '0.1', 'experiment.warmup': '10', prior: 'scr', seed: '5' });
  assert.deepEqual(trials[23].overrides.slice(0, 3), [['experiment.rank', 4], ['experiment.lr', 0.3], ['experiment.warmup', 30]]);
  assert.equal(new Set(trials.map((t) => t.id)).size, trials.length);
  assert.deepEqual(formatOverrides(trials[2].overrides), ['experiment.rank=2', 'experiment.lr=0.1', 'experiment.warmup=10', 'experiment.scr.path="a/b"', 'experiment.merge=true', 'seed=5']);
});

test('trial ids are stable: same overrides in another order or spec layout give the same id', () => {
  const a = expandSweep(parseSweepSpec({ grid: { x: [1, 2], y: ['p'] } }));
  const b = expandSweep(parseSweepSpec({ grid: { y: ['p'], x: [2, 1] } }));
  assert.deepEqual(new Set(a.map((t) => t.id)), new Set(b.map((t) => t.id)));
  assert.equal(trialId([['x', { b: 1, a: 2 }]]), trialId([['x', { a: 2, b: 1 }]]));
  assert.notEqual(trialId([['x', 1]]), trialId([['x', '1']]));
  assert.match(a[0].id, /^t[0-9a-f]{10}$/);
});

test('random sampling is seeded and within range', () => {
  const spec = parseSweepSpec({ random: { count: 50, seed: 3, params: { lr: { loguniform: [1e-5, 1e-3] }, r: { randint: [1, 3] }, opt: { choice: ['adamw', 'sgd'] } } } });
  const t1 = expandSweep(spec);
  const t2 = expandSweep(spec);
  assert.deepEqual(t1, t2);
  assert.equal(t1.length, 50);
  for (const t of t1) {
    const o = Object.fromEntries(t.overrides) as { lr: number; r: number; opt: string };
    assert.ok(o.lr >= 1e-5 && o.lr <= 1e-3);
    assert.ok([1, 2, 3].includes(o.r));
    assert.ok(['adamw', 'sgd'].includes(o.opt));
  }
  const other = expandSweep(parseSweepSpec({ random: { ...spec.random!, seed: 4 } }));
  assert.notDeepEqual(other.map((t) => t.overrides), t1.map((t) => t.overrides));
});

test('bad specs are rejected with the offending path', () => {
  assert.throws(() => parseSweepSpec({ grid: { a: [] } }), /sweep\.grid\.a: must NOT have fewer than 1 items/);
  assert.throws(() => parseSweepSpec({ zip: [{ a: [1, 2], b: [1] }] }), /equal lengths, got a: 2, b: 1/);
  assert.throws(() => parseSweepSpec({ grid: { a: [1] }, zip: [{ a: [2] }] }), /"a" is swept by two axes/);
  assert.throws(() => parseSweepSpec({ gird: { a: [1] } }), /additional properties \("gird"\)/);
  assert.throws(() => parseSweepSpec({ repeats: 2, seeds: [1] }), /either "repeats" or "seeds"/);
  assert.throws(() => expandSweep(parseSweepSpec({ grid: { a: [1, 1] } })), /identical overrides/);
});

test('axes that overlap (a node and a path inside it) are an error naming both', () => {
  const overlap = (spec: unknown) => () => parseSweepSpec(spec);
  const both = (a: string, b: string) => new RegExp(`axes ${a.replace(/[.[\]]/g, '\\$&')} \\("[^"]+"\\) and ${b.replace(/[.[\]]/g, '\\$&')} \\("[^"]+"\\) overlap`);
  assert.throws(overlap({ grid: { experiment: [{ type: 'experiment/a' }], 'experiment.lr': [1, 2] } }), both('grid.experiment', 'grid.experiment.lr'));
  assert.throws(overlap({ grid: { 'experiment.lr': [1, 2] }, variants: { kind: { a: { experiment: { type: 'experiment/a' } } } } }), both('grid.experiment.lr', 'variants.kind'));
  assert.throws(overlap({ zip: [{ 'model.unet': [1, 2] }], random: { count: 2, params: { 'model.unet.rank': { choice: [4, 8] } } } }), both('zip[0]', 'random'));
  assert.throws(overlap({ grid: { seed: [0, 1] }, repeats: 2 }), /"seed" is swept by two axes \(grid\.seed and repeats\)/);
  // siblings and shared prefixes that are not a path boundary do not overlap
  assert.doesNotThrow(overlap({ grid: { 'experiment.lr': [1, 2], 'experiment.lr_warmup': [0, 1], 'experiment.hidden': [8] } }));
  // one variants group may set a node in one variant and a path inside it in another: one applies per trial
  assert.doesNotThrow(overlap({ variants: { kind: { a: { experiment: { type: 'experiment/a' } }, b: { 'experiment.lr': 1 } } } }));
});
