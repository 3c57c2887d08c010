import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../framework/engine/rng.js';

test('derived streams are reproducible and independent of draw order', () => {
  const a = Rng.derive(7, 'degradation', 3);
  const b = Rng.derive(7, 'degradation', 3);
  const xs = Array.from({ length: 5 }, () => a.random());
  // draw from an unrelated stream in between: must not affect b
  Rng.derive(7, 'degradation', 4).random();
  assert.deepEqual(Array.from({ length: 5 }, () => b.random()), xs);
  assert.notDeepEqual(Array.from({ length: 5 }, () => Rng.derive(8, 'degradation', 3).random()), xs);
  assert.notEqual(Rng.derive(7, 'a', 1).nextU32(), Rng.derive(7, 'a1').nextU32());
});

test('state snapshot continues the exact sequence', () => {
  const r = Rng.derive(1, 'x');
  r.normal();
  const st = r.getState();
  const next = [r.normal(), r.random(), r.int(0, 9)];
  const r2 = Rng.restore(r.keys, st);
  assert.deepEqual([r2.normal(), r2.random(), r2.int(0, 9)], next);
});

test('moments of uniform, normal and poisson draws match their distributions', () => {
  const r = Rng.derive(123, 'moments');
  const n = 200000;
  let su = 0, sn = 0, sn2 = 0;
  for (let i = 0; i < n; i++) {
    su += r.random();
    const z = r.normal();
    sn += z;
    sn2 += z * z;
  }
  assert.ok(Math.abs(su / n - 0.5) < 0.005);
  assert.ok(Math.abs(sn / n) < 0.01);
  assert.ok(Math.abs(sn2 / n - 1) < 0.015);
  for (const lam of [0.5, 4, 30, 5000]) {
    let s = 0, s2 = 0;
    const m = 40000;
    for (let i = 0; i < m; i++) {
      const k = r.poisson(lam);
      assert.ok(Number.isInteger(k) && k >= 0);
      s += k;
      s2 += k * k;
    }
    const mean = s / m;
    const variance = s2 / m - mean * mean;
    // mean within 5 standard errors, variance within 5%
    assert.ok(Math.abs(mean - lam) < 5 * Math.sqrt(lam / m), `poisson(${lam}) mean ${mean}`);
    assert.ok(Math.abs(variance / lam - 1) < 0.05, `poisson(${lam}) variance ${variance}`);
  }
});

test('int is unbiased over its range and choice follows weights', () => {
  const r = Rng.derive(5);
  const counts = [0, 0, 0];
  for (let i = 0; i < 30000; i++) counts[r.int(0, 2)]++;
  for (const c of counts) assert.ok(Math.abs(c / 30000 - 1 / 3) < 0.015);
  const w = { a: 0, b: 0 };
  for (let i = 0; i < 20000; i++) w[r.choice(['a', 'b'] as const, [0.2, 0.8])]++;
  assert.ok(Math.abs(w.a / 20000 - 0.2) < 0.015);
  assert.deepEqual([...r.permutation(10)].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('fillUniform draws exactly what uniform() draws in a loop, later state included', () => {
  for (const [len, lo, hi] of [[0, 0, 1], [1, 0, 1], [9, -2, 3], [4097, 0.5, 0.75]] as const) {
    const a = Rng.derive(6, 'fill-uniform', len);
    const b = Rng.derive(6, 'fill-uniform', len);
    a.normal(); // a spare left behind must stay untouched by uniform draws
    b.normal();
    const filled = a.fillUniform(new Float64Array(len), lo, hi);
    const looped = Float64Array.from({ length: len }, () => b.uniform(lo, hi));
    assert.deepEqual(Array.from(filled), Array.from(looped), `length ${len}`);
    assert.deepEqual([a.random(), a.normal(), a.nextU32()], [b.random(), b.normal(), b.nextU32()], `after length ${len}`);
    assert.deepEqual(a.getState(), b.getState());
  }
});

test('fillNormal draws exactly what normal() draws in a loop, spare and later state included', () => {
  for (const [len, preSpare] of [[0, false], [1, false], [7, false], [8, true], [1001, true], [1, true]] as const) {
    const a = Rng.derive(5, 'fill', len);
    const b = Rng.derive(5, 'fill', len);
    if (preSpare) {
      // leave a cached second draw behind, which fillNormal must hand out first
      a.normal();
      b.normal();
    }
    const filled = a.fillNormal(new Float64Array(len), 0.25, 3);
    const looped = Float64Array.from({ length: len }, () => b.normal(0.25, 3));
    assert.deepEqual(Array.from(filled), Array.from(looped), `length ${len}`);
    // the generator continues identically afterwards (state and spare written back)
    assert.deepEqual([a.normal(), a.random(), a.normal()], [b.normal(), b.random(), b.normal()], `after length ${len}`);
    assert.deepEqual(a.getState(), b.getState());
  }
});

test('advance(n) skips exactly n outputs; copy() and setState() continue the same sequence', () => {
  for (const n of [0, 1, 2, 3, 4097]) {
    const a = Rng.derive(3, 'advance', n);
    const b = Rng.derive(3, 'advance', n);
    a.normal(); // a pending spare is not an output: advance leaves it in place
    b.normal();
    a.advance(n);
    for (let i = 0; i < n; i++) b.nextU32();
    assert.deepEqual(a.getState(), b.getState(), `advance(${n})`);
    assert.deepEqual([a.normal(), a.random()], [b.normal(), b.random()]);
  }
  assert.throws(() => Rng.derive(1).advance(-1), /whole number/);
  assert.throws(() => Rng.derive(1).advance(1.5), /whole number/);
  const a = Rng.derive(2, 'copy');
  a.normal();
  const c = a.copy();
  assert.deepEqual(c.keys, a.keys);
  const fromCopy = [c.normal(), c.random(), c.nextU32()];
  assert.deepEqual([a.normal(), a.random(), a.nextU32()], fromCopy, 'a copy draws what the original draws');
  const snapshot = a.getState();
  const later = [a.random(), a.normal()];
  a.setState(snapshot);
  assert.deepEqual([a.random(), a.normal()], later, 'setState rewinds in place');
});
