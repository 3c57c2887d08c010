/**
 * `!patch` list operations: patch an element by id, add one at the end, `$delete` one, place a
 * new one `$before`/`$after` an id; origins follow the elements; mistakes name the id.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { loadConfig, ConfigError, formatOrigin } from '../../../framework/config/index.js';

const repo = (p: string) => join(process.cwd(), p);

function files(spec: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'rass-patch-'));
  for (const [name, text] of Object.entries(spec)) writeFileSync(join(dir, name), text);
  return dir;
}

const BASE = `stages:\n  - { id: a, p: 1 }\n  - { id: b, p: 2 }\n  - { id: c, p: 3 }\n`;

test('rass-full.yaml, a short patch of realesrgan.yaml, resolves to the pipeline it spelled out before', async () => {
  const patched = await loadConfig(repo('configs/_base_/degradations/rass-full.yaml'));
  const expanded = await loadConfig(repo('tests/fixtures/config/patch/rass-full-expanded.yaml'));
  assert.deepEqual(patched.value, expanded.value);
  assert.equal((patched.value.stages as { id: string }[])[0].id, 'blur1');
  // origins point at the base file's lines for inherited elements
  assert.match(formatOrigin(patched.origin(['stages', 0, 'sigma_x'])), /realesrgan\.yaml:\d+:\d+/);
});

test('$delete, $before, $after and patch-by-id compose in one !patch list', async () => {
  const dir = files({
    'base.yaml': BASE,
    'child.yaml': `extends: base.yaml\nstages: !patch\n  - { id: a, $delete: true }\n  - { id: x, $before: c, p: 9 }\n  - { id: y, $after: c, p: 10 }\n  - { id: b, p: 20 }\n  - { id: z, p: 11 }\n`,
  });
  const cfg = await loadConfig(join(dir, 'child.yaml'));
  assert.deepEqual(cfg.value.stages, [
    { id: 'b', p: 20 },
    { id: 'x', p: 9 },
    { id: 'c', p: 3 },
    { id: 'y', p: 10 },
    { id: 'z', p: 11 },
  ]);
  // every element's origin follows it to its new index
  assert.match(formatOrigin(cfg.origin(['stages', 0, 'p'])), /child\.yaml:6:/);
  assert.match(formatOrigin(cfg.origin(['stages', 1, 'p'])), /child\.yaml:4:/);
  assert.match(formatOrigin(cfg.origin(['stages', 2, 'p'])), /base\.yaml:4:/);
  assert.match(formatOrigin(cfg.origin(['stages', 3, 'p'])), /child\.yaml:5:/);
  assert.match(formatOrigin(cfg.origin(['stages', 4, 'p'])), /child\.yaml:7:/);
});

async function patchError(child: string): Promise<string> {
  const dir = files({ 'base.yaml': BASE, 'child.yaml': `extends: base.yaml\nstages: !patch\n${child}` });
  try {
    await loadConfig(join(dir, 'child.yaml'));
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message;
  }
  return assert.fail('expected a ConfigError');
}

test('patch mistakes are errors that name the file, line and id', async () => {
  assert.match(await patchError('  - { id: zzz, $delete: true }\n'), /child\.yaml:3:\d+ .*\$delete: no inherited element has id "zzz"; ids: a, b, c/);
  assert.match(await patchError('  - { id: x, $before: bb }\n'), /\$before: no inherited element has id "bb" \(did you mean "b"\?\)/);
  assert.match(await patchError('  - { id: b, $after: c }\n'), /"b" is already in the list/);
  assert.match(await patchError('  - { id: x, $after: c, $before: a }\n'), /one of `\$before` and `\$after`/);
  assert.match(await patchError('  - { id: a, $delete: true, p: 2 }\n'), /takes no other keys/);
});

test('a !patch of a list no base defines is an error, not a literal list of patch ops', async () => {
  const dir = files({ 'base.yaml': BASE, 'child.yaml': 'extends: base.yaml\nstagez: !patch\n  - { id: a, $delete: true }\n' });
  try {
    await loadConfig(join(dir, 'child.yaml'));
    assert.fail('expected a ConfigError');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.match(e.message, /stagez: !patch needs an inherited list to patch, found nothing/);
  }
  assert.match(await patchError('  - { id: a, $delete: false }\n'), /`\$delete` takes the value true/);
});
