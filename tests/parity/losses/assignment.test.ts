import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { linearSumAssignment } from '../../../registry/losses/mask2former/hungarian.js';

interface Case { seed: number; rows: number; cols: number; kind: 'float' | 'ties'; total: number; total_max: number; row_ind: number[]; col_ind: number[] }

/** Same generator as scripts/fixtures/heads/make_fixtures.py (values exact in float64). */
function lcgMatrix(seed: number, rows: number, cols: number, kind: string): Float64Array {
  let state = BigInt(seed) & 0xffffffffn;
  const out = new Float64Array(rows * cols);
  for (let k = 0; k < out.length; k++) {
    state = (state * 1664525n + 1013904223n) & 0xffffffffn;
    const v = Number(state >> 8n);
    out[k] = kind === 'ties' ? v % 5 : (v % 100000) / 1024 - 40;
  }
  return out;
}

const fixture = JSON.parse(readFileSync(join(process.cwd(), 'tests/fixtures/heads/assignment.json'), 'utf8')) as { cases: Case[] };

describe('linear sum assignment vs scipy.optimize.linear_sum_assignment', () => {
  it(`${fixture.cases.length} random matrices (square and rectangular, with ties): optimal total exact, assignment equal where unique`, () => {
    for (const c of fixture.cases) {
      const m = lcgMatrix(c.seed, c.rows, c.cols, c.kind);
      const r = linearSumAssignment(m, c.rows, c.cols);
      const what = `${c.rows}x${c.cols} ${c.kind} seed ${c.seed}`;
      assert.equal(r.rows.length, Math.min(c.rows, c.cols), what);
      // a valid matching: rows sorted and distinct, columns distinct
      assert.deepEqual([...r.rows], [...r.rows].sort((a, b) => a - b), what);
      assert.equal(new Set(r.rows).size, r.rows.length, what);
      assert.equal(new Set(r.cols).size, r.cols.length, what);
      // costs are multiples of 1/1024 below 2^53: sums are exact, so the totals must be identical
      assert.equal(r.total, c.total, `${what}: total`);
      if (c.kind === 'float') assert.deepEqual({ r: [...r.rows], c: [...r.cols] }, { r: c.row_ind, c: c.col_ind }, `${what}: assignment`);
      const mx = linearSumAssignment(m, c.rows, c.cols, { maximize: true });
      assert.equal(mx.total, c.total_max, `${what}: maximize`);
    }
  });

  it('edge cases: empty, forbidden pairs, NaN', () => {
    assert.equal(linearSumAssignment([], 0, 3).rows.length, 0);
    const r = linearSumAssignment([1, Infinity, Infinity, 2], 2, 2);
    assert.deepEqual([...r.cols], [0, 1]);
    assert.throws(() => linearSumAssignment([Infinity, Infinity], 1, 2), /infeasible/);
    assert.throws(() => linearSumAssignment([NaN], 1, 1), /NaN/);
  });
});
