/**
 * The repository carries everything it needs: no tracked file may point at the sibling `shared`
 * folder next to the clone (the fixtures once lived there, and a user's clone has no such folder).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';

// Built from parts so that this file does not match its own pattern.
const SIBLING = ['..', 'shared'].join('/');

test(`no tracked file refers to a folder outside the repository (${SIBLING})`, () => {
  const files = execFileSync('git', ['ls-files', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean);
  assert.ok(files.length > 100, `git ls-files listed only ${files.length} files`);
  const offenders: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      if (!statSync(file).isFile()) continue;
      text = readFileSync(file, 'latin1');
    } catch { continue; } // deleted in the work tree but still in the index
    const lines = text.split('\n');
    lines.forEach((line, i) => { if (line.includes(SIBLING)) offenders.push(`${file}:${i + 1}: ${line.trim().slice(0, 120)}`); });
  }
  assert.deepEqual(offenders, [], `tracked files refer to ${SIBLING}:\n${offenders.join('\n')}`);
});

test('the reference fixtures the parity tests read are in the repository', () => {
  for (const f of ['kernels', 'filter2d', 'resize', 'noise', 'diffjpeg', 'usm_sharp', 'psnr_ssim', 'miou']) {
    const fixture = JSON.parse(readFileSync(`tests/fixtures/reference/${f}.json`, 'utf8')) as { cases: unknown[] };
    assert.ok(fixture.cases.length > 0, `${f}.json has no cases`);
  }
});
