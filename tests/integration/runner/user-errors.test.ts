/**
 * A place the user chose that cannot hold a run store or an output folder is a UserError
 * (exit 2, one line, no stack trace) and fails at once: a `runs_dir` through a file, one under
 * /proc (where a recursive mkdir retried ENOENT forever), `rass degrade --output` at a file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir, ROOT } from './helpers.js';
import { ensureWritableDir } from '../../../framework/tracking/ensure-dir.js';
import { runCliCaptured } from '../../helpers/cli.js';
import { pluginPackage } from '../../../framework/api.js';
import { plugins } from '../../../registry/degradations/index.js';
import { degradeCommand } from '../../../registry/degradations/commands/degrade.js';

const QUICK = ['run', join(ROOT, 'configs/toy/classifier.yaml'), '--set', 'experiment.steps=2', '--set', 'backend=cpu'];

test('a runs_dir through a file fails with a UserError naming runs_dir, its --set and the file', async () => {
  const dir = tempDir('runsdir-file');
  writeFileSync(join(dir, 'afile'), 'x');
  const r = await cli([...QUICK, '--set', `runs_dir=${join(dir, 'afile', 'runs')}`], dir);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, new RegExp(`error: runs_dir \\(--set #3\\) ${join(dir, 'afile', 'runs')}: ${join(dir, 'afile')} is a file, not a directory`));
  assert.doesNotMatch(r.err, /internal error|\n\s+at /);
});

test('a runs_dir under /proc fails at once instead of looping in mkdir', { skip: !existsSync('/proc/self') && 'no /proc on this system' }, () => {
  // a child process: the old recursive mkdir never returned, and a test must not hang with it
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/bin/rass.js'), ...QUICK, '--set', 'runs_dir=/proc/rass-runs'], { cwd: tempDir('proc'), encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(r.signal, 'SIGTERM', `still running after ${Date.now() - t0} ms (mkdir loop)`);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /error: runs_dir \(--set #3\) \/proc\/rass-runs: cannot create \/proc\/rass-runs/);
});

test('ensureWritableDir: creates missing levels, accepts an existing folder, refuses files and unwritable places', () => {
  const dir = tempDir('ensure');
  ensureWritableDir(join(dir, 'a', 'b', 'c'), 'x');
  assert.ok(existsSync(join(dir, 'a', 'b', 'c')));
  ensureWritableDir(join(dir, 'a', 'b', 'c'), 'x'); // again: nothing to do
  writeFileSync(join(dir, 'f'), '');
  assert.throws(() => ensureWritableDir(join(dir, 'f'), 'runs_dir'), { name: 'UserError', message: `runs_dir ${join(dir, 'f')}: ${join(dir, 'f')} is a file, not a directory` });
  assert.throws(() => ensureWritableDir(join(dir, 'f', 'g', 'h'), '--output'), { name: 'UserError', message: /is a file, not a directory/ });
  if (existsSync('/proc/self')) assert.throws(() => ensureWritableDir('/proc/rass-x/y', 'runs_dir'), { name: 'UserError' });
});

test('rass degrade --output at a file is a UserError before any work', async () => {
  const dir = tempDir('degrade-out');
  mkdirSync(join(dir, 'in'));
  writeFileSync(join(dir, 'out'), 'a file');
  const pkg = pluginPackage({ name: 'rass/degradations', plugins, commands: [degradeCommand] });
  const r = await runCliCaptured(['degrade', '--pipeline', join(ROOT, 'configs/_base_/degradations/mild.yaml'), '--input', join(dir, 'in'), '--output', join(dir, 'out')], [pkg], dir);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, new RegExp(`^error: --output ${join(dir, 'out')}: ${join(dir, 'out')} is a file, not a directory`));
});
