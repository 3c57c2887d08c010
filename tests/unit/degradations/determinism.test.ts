/** (seed, sample index) -> the same degraded image and the same recorded params in another process. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { degradeDigest } from './degrade-sample.js';

describe('degradation determinism across processes', () => {
  it('a child process reproduces the digest of rass-full and realesrgan samples', async () => {
    const self = fileURLToPath(import.meta.url);
    const helper = self.replace(/determinism\.test\.(ts|js)$/, 'degrade-sample.$1');
    for (const [preset, seed, index] of [['rass-full', 3, 17], ['realesrgan', 9, 2]] as const) {
      const here = await degradeDigest(preset, seed, index);
      // same interpreter flags (tsx's loader when run from source, none when compiled)
      const out = execFileSync(process.execPath, [...process.execArgv, helper, preset, String(seed), String(index)], { encoding: 'utf8' });
      const there = /DIGEST ([0-9a-f]+)/.exec(out)?.[1];
      assert.equal(there, here, `${preset} seed ${seed} index ${index}`);
      assert.notEqual(await degradeDigest(preset, seed, index + 1), here);
    }
  });
});
