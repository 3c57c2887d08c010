import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig, ConfigError, formatOrigin } from '../../../framework/config/index.js';

// `key: !include file.yaml` inlines another file (its own extends resolved) and replaces the key
const fixture = (p: string) => join(process.cwd(), 'tests/fixtures/config/include', p);

test('!include grafts a file (with its extends and patches) at a key, origins point into it', async () => {
  const cfg = await loadConfig(fixture('run.yaml'));
  const pipe = (cfg.value.vars as { pipe: unknown }).pipe;
  assert.deepEqual(pipe, { stages: [{ id: 'blur', prob: 1 }, { id: 'noise', prob: 0.5 }] });
  assert.deepEqual((cfg.value.experiment as { stages: unknown }).stages, [{ id: 'blur', prob: 1 }, { id: 'noise', prob: 0.5 }]);
  assert.match(formatOrigin(cfg.origin(['vars', 'pipe', 'stages', 1, 'prob'])), /include\/stages\.yaml:4:18 \(via .*include\/run\.yaml\)/);
  assert.match(formatOrigin(cfg.origin(['vars', 'pipe', 'stages', 0, 'id'])), /include\/stages-base\.yaml:2:7/);
  assert.match(formatOrigin(cfg.origin(['vars', 'pipe'])), /include\/run\.yaml:3:18$/);
});

test('an included map replaces an inherited one instead of merging into it', async () => {
  const { parseYamlText } = await import('../../../framework/config/yaml-source.js');
  const parsed = parseYamlText('a: !include x.yaml\n', '/tmp/t.yaml');
  assert.deepEqual(parsed.includes.map((i) => [i.path, i.file]), [[['a'], 'x.yaml']]);
  assert.equal(parsed.directives.get(JSON.stringify(['a'])), 'replace');
});

test('!include errors: a missing file names the including key, a cycle prints the chain, a non-path is refused', async () => {
  await assert.rejects(loadConfig(fixture('missing.yaml')), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /missing\.yaml:5:15 vars\.p \(!include\): cannot read config file .*nowhere\.yaml: no such file/);
    return true;
  });
  await assert.rejects(loadConfig(fixture('cycle-a.yaml')), /cycle: .*cycle-a\.yaml -> .*cycle-b\.yaml -> .*cycle-a\.yaml/);
  const { parseYamlText } = await import('../../../framework/config/yaml-source.js');
  assert.throws(() => parseYamlText('a: !include [x]\n', '/tmp/t.yaml'), /!include takes a file path/);
  assert.throws(() => parseYamlText('!include x.yaml\n', '/tmp/t.yaml'), /cannot be !include-d: use `extends:`/);
});
