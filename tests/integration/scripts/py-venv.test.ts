/**
 * scripts/py-venv.sh keeps pip quiet: a venv that installs prints one line, and pip's output
 * (here: the pip self-upgrade failing offline) shows only when the install fails, then in full.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const python = spawnSync('python3', ['-c', 'import venv, ensurepip'], { encoding: 'utf8' });
const skip = python.status !== 0 && `python3 with venv/ensurepip is not available (${(python.stderr || python.error?.message || '').trim().split('\n').pop()})`;

function venv(name: string, requirements: string): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'rass-pyvenv-'));
  const req = join(dir, 'requirements.txt');
  writeFileSync(req, requirements);
  // PIP_NO_INDEX: no network; pip fails fast where it would download
  const r = spawnSync('bash', ['scripts/py-venv.sh', name, req], { encoding: 'utf8', env: { ...process.env, PIP_NO_INDEX: '1' }, timeout: 180_000 });
  rmSync(dir, { recursive: true, force: true });
  const out = r.stdout.trim();
  if (out) rmSync(out, { recursive: true, force: true });
  return { status: r.status, stdout: out, stderr: r.stderr };
}

test('py-venv: a successful install prints one line; a failed one prints pip\'s output', { skip }, () => {
  const name = `test-quiet-${process.pid}`;
  try {
    const ok = venv(name, '# nothing to install\n');
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`/\\.venv/${name}-[0-9a-f]{12}$`));
    assert.equal(ok.stderr, `creating Python venv ${ok.stdout} (one-time) ...\n`, 'nothing from pip');
    const bad = venv(name, 'no-such-package-for-rass-tests==0.0.1\n');
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /py-venv: `.*pip install .*-r .*requirements\.txt` failed; its output:/);
    assert.match(bad.stderr, /no-such-package-for-rass-tests/);
  } finally {
    spawnSync('bash', ['-c', `rm -rf .venv/${name}-* .venv/${name}-*.log .venv.${name}.lock`]);
  }
});
