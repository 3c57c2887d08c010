/**
 * NIQE parity with BasicSR 1.4.2 calculate_niqe (tests/fixtures/metrics/niqe.json, made by
 * scripts/fixtures/metrics/make_niqe.py from the PyPI sdist), within 1e-3.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { niqe } from '../../../registry/metrics/niqe/niqe.js';

const fx = JSON.parse(readFileSync(resolve(process.cwd(), 'tests/fixtures/metrics/niqe.json'), 'utf8'));
for (const c of fx.cases) {
  test(`niqe ${c.name}`, () => {
    const [h, w, ch] = c.shape as number[];
    const data = new Uint8Array(Buffer.from(c.rgb_uint8_base64, 'base64'));
    for (const [key, want] of Object.entries(c.expected as Record<string, number>)) {
      const got = niqe({ data, height: h, width: w, channels: ch }, Number(key.replace('crop', '')), c.name);
      assert.ok(Math.abs(got - want) <= fx.tolerance, `${c.name} ${key}: ${got} vs ${want}`);
    }
  });
}
