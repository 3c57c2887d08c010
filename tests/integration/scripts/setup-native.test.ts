/**
 * The native backend step of `npm install` (postinstall: setup-native.mjs --install) never fails
 * the install: it skips on RASS_NATIVE=0 and, when the build cannot happen, says why in one
 * line, that rass uses wasm, and how to retry. `--check` (what `npm test` runs) never builds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const script = join(process.cwd(), 'scripts', 'setup-native.mjs');
const pkg = JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8')) as { scripts: Record<string, string> };

function setup(args: string[], env: Record<string, string | undefined>) {
  return spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
}

test('npm install runs the native step in install mode', () => {
  assert.equal(pkg.scripts.postinstall, 'node scripts/setup-native.mjs --install');
});

test('RASS_NATIVE=0 skips it, in one line, exit 0', () => {
  const r = setup(['--install'], { RASS_NATIVE: '0' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '[setup:native] skipped (RASS_NATIVE=0): rass uses wasm; `npm run setup:native` builds the native backend later\n');
});

test('a build that cannot happen falls back to wasm in one line and does not fail the install', () => {
  // no tools on PATH (no bash, no python3): the first phase fails before anything is touched
  const r = setup(['--install', '--force'], { PATH: '/nonexistent', RASS_NATIVE: undefined });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^\[setup:native\] 1\/4 Python venv with tensorflow/);
  assert.equal(lines.length, 2, r.stdout);
  assert.match(lines[1], /^\[setup:native\] native TensorFlow backend not built \(pip could not install TensorFlow .*ENOENT.*\); rass uses wasm\. Retry with `npm run setup:native`/);
});

test('--check reports and never builds (npm test does not change the backend)', () => {
  const info = join(process.cwd(), 'native', 'build-info.json');
  const before = existsSync(info) ? statSync(info).mtimeMs : undefined;
  const r = setup(['--check'], { PATH: '/nonexistent' });
  assert.ok(r.status === 0 || r.status === 3, `exit ${r.status}: ${r.stdout}${r.stderr}`);
  if (r.status === 3) assert.match(r.stdout, /not built|outdated/);
  else assert.match(r.stdout, /already built/);
  assert.equal(existsSync(info) ? statSync(info).mtimeMs : undefined, before, 'nothing was (re)built');
  assert.match(readFileSync(join(process.cwd(), 'scripts', 'run-tests.mjs'), 'utf8'), /setup-native\.mjs'\), '--check'\]/);
});
