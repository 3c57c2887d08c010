import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../../framework/paths.js';

/**
 * native/patches/*.patch (the compiled-step entry point registerFunction) applies cleanly, with
 * no offset or fuzz, to the pristine binding sources of the tfjs-node version setup:native
 * installs (kept by setup:native in binding.pristine/), and the binding it built was compiled
 * from exactly pristine + patches.
 */
const root = packageRoot();
const pkg = join(root, 'native', 'node_modules', '@tensorflow', 'tfjs-node');
const pristine = join(pkg, 'binding.pristine');
const patchDir = join(root, 'native', 'patches');
const patches = readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort();
const skip = existsSync(pristine) ? false : `no pristine tfjs-node binding sources at ${pristine} (\`npm run setup:native\` keeps them there when it patches)`;

describe('tfjs-node binding patch', { skip }, () => {
  it('applies cleanly to the pristine sources of the installed tfjs-node version, and the built sources are pristine + patch', () => {
    const version = (JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }).version;
    assert.ok(patches.length > 0, 'no patches in native/patches');
    const tmp = mkdtempSync(join(tmpdir(), 'rass-patch-'));
    try {
      cpSync(pristine, join(tmp, 'binding'), { recursive: true });
      for (const f of readdirSync(join(tmp, 'binding'))) {
        assert.ok(!readFileSync(join(tmp, 'binding', f), 'utf8').includes('rass patch'), `binding.pristine/${f} is not pristine`);
      }
      for (const p of patches) {
        const text = readFileSync(join(patchDir, p), 'utf8');
        assert.ok(text.includes(`tfjs-node ${version}`), `${p} does not name the installed tfjs-node ${version}`);
        const r = spawnSync('patch', ['-p1', '--forward', '--batch', '--no-backup-if-mismatch', '-i', join(patchDir, p)], { cwd: tmp, encoding: 'utf8' });
        assert.equal(r.status, 0, `${p}: ${r.stdout}${r.stderr}`);
        assert.doesNotMatch(r.stdout, /offset|fuzz/i, `${p} applies only approximately: ${r.stdout}`);
      }
      for (const f of readdirSync(join(pkg, 'binding'))) {
        assert.equal(readFileSync(join(pkg, 'binding', f), 'utf8'), readFileSync(join(tmp, 'binding', f), 'utf8'), `binding/${f} differs from pristine + patches (rerun \`npm run setup:native\`)`);
      }
      assert.ok(readFileSync(join(tmp, 'binding', 'tfjs_binding.cc'), 'utf8').includes('"registerFunction"'), 'the patched binding exports no registerFunction');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('the build records the patch hash (a changed patch rebuilds)', () => {
    const info = JSON.parse(readFileSync(join(root, 'native', 'build-info.json'), 'utf8')) as { patch?: string };
    // the same digest as scripts/setup-native.mjs: sha256 over the patch files in name order
    const h = createHash('sha256');
    for (const p of patches) h.update(readFileSync(join(patchDir, p)));
    assert.equal(info.patch, h.digest('hex').slice(0, 16), 'native/build-info.json records another patch: rerun `npm run setup:native`');
  });
});
