/**
 * scripts/run-tests.mjs ends with one line per group of skipped tests, with the reason, so a
 * run that silently lost a whole area (no MLflow, no native backend) says so at the bottom.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Inside `node --test`, NODE_TEST_CONTEXT makes a nested test run report to this one instead of its reporters. */
function withoutTestContext(): Record<string, string | undefined> {
  const { NODE_TEST_CONTEXT: _c, ...env } = process.env;
  return env;
}

test('skipped tests are summed up per reason at the end of the run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rass-runtests-'));
  try {
    mkdirSync(join(dir, 'dist', 'tests'), { recursive: true });
    writeFileSync(join(dir, 'dist', 'tests', 'a.test.js'), `import { describe, it, test } from 'node:test';
test('runs', () => {});
describe('needs a server', { skip: 'no MLflow server here' }, () => { it('one', () => {}); it('two', () => {}); });
test('needs a GPU', { skip: 'no GPU here' }, () => {});
`);
    writeFileSync(join(dir, 'package.json'), '{"type": "module"}\n');
    const r = spawnSync(process.execPath, [join(process.cwd(), 'scripts', 'run-tests.mjs')], { cwd: dir, encoding: 'utf8', env: { ...withoutTestContext(), RASS_NATIVE: '0' } });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const lines = r.stdout.trim().split('\n');
    const summary = lines.filter((l) => l.startsWith('SKIPPED'));
    assert.deepEqual(summary.sort(), ['SKIPPED 1 test: no GPU here', 'SKIPPED 1 test: no MLflow server here'].sort());
    assert.deepEqual(lines.slice(-2).sort(), summary.sort(), 'at the very end');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
