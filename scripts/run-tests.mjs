#!/usr/bin/env node
// Runs every compiled test file (dist/tests/**/*.test.js) with Node's built-in test runner.
// Node 20's --test does not expand globs itself, so this script finds the files.
// Usage: node scripts/run-tests.mjs [substring-filter ...]
import { readdirSync, statSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = join(process.cwd(), 'dist', 'tests');
if (!existsSync(root)) {
  console.error('dist/tests not found: run `npm run build` first.');
  process.exit(2);
}
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
})(root);
const filters = process.argv.slice(2);
const selected = filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files;
if (selected.length === 0) {
  console.error(`no test files matched ${filters.join(' ')}`);
  process.exit(2);
}
// The native TensorFlow backend is optional: its tests run when `npm install` (or `npm run
// setup:native`) built it. The test run only checks, never builds: running the tests must not
// change which backend later commands use.
const childEnv = { ...process.env };
if (process.env.RASS_NATIVE !== '0') {
  const native = spawnSync(process.execPath, [join(process.cwd(), 'scripts', 'setup-native.mjs'), '--check'], { encoding: 'utf8', timeout: 5 * 60 * 1000 });
  const last = ((native.stdout || native.stderr || '').trim().split('\n').pop() ?? '').replace(/^\[setup:native\] /, '');
  if (native.status === 0) {
    childEnv.RASS_NATIVE_AVAILABLE = '1';
    console.log(`NATIVE BACKEND: ${last}`);
  } else {
    console.log(`NATIVE BACKEND: unavailable (${native.error ? native.error.message : last || `exit ${native.status}`}) -- native tests skipped`);
  }
}
// A second reporter (TAP, to a file) lets the run end with one line per group of skipped
// tests and its reason, instead of skip notes scattered through the spec output.
const tapFile = join(mkdtempSync(join(tmpdir(), 'rass-tests-')), 'results.tap');
const args = ['--test', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tapFile}`, `--test-concurrency=${process.env.RASS_TEST_CONCURRENCY ?? '2'}`, ...selected];
const r = spawnSync(process.execPath, args, { stdio: 'inherit', env: childEnv });
for (const line of skippedGroups(tapFile)) console.log(line);
rmSync(dirname(tapFile), { recursive: true, force: true });
process.exit(r.status ?? 1);

/** `SKIPPED n tests: reason` per distinct skip reason in the TAP output (empty when none). */
function skippedGroups(file) {
  if (!existsSync(file)) return [];
  const groups = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    // only leaves: a suite whose tests were skipped is itself reported as `ok`
    const m = /^\s*ok \d+ - (.*?) # SKIP ?(.*)$/.exec(line);
    if (!m) continue;
    const reason = m[2].trim() || 'skipped (no reason given)';
    groups.set(reason, (groups.get(reason) ?? 0) + 1);
  }
  return [...groups].map(([reason, n]) => `SKIPPED ${n} test${n === 1 ? '' : 's'}: ${reason}`);
}
