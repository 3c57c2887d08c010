/**
 * Config mistakes a user makes on the command line or in a file are UserErrors that name where
 * they came from: the `--set` that caused them (not the file the key would live in), the file
 * that is empty, the list index on a value that is not a list; an empty `--set` value is an
 * error instead of a silent deletion; `rass validate` checks `_base_` fragments as the slot
 * they fill (every shipped config passes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, mkdtempSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, ConfigError } from '../../../framework/config/index.js';
import { validateRunConfig } from '../../../framework/runner/run-config.js';
import { isUserError } from '../../../framework/errors.js';
import { PluginRegistry } from '../../../framework/plugins/registry.js';
import { runCliCaptured } from '../../helpers/cli.js';
import { experimentsPackage } from '../../../experiments/index.js';
import { registryPackage } from '../../../registry/index.js';

const QUICKSTART = join(process.cwd(), 'configs/toy/classifier.yaml');

async function configError(sets: string[], file = QUICKSTART): Promise<ConfigError> {
  const reg = new PluginRegistry();
  reg.loadPackage(experimentsPackage);
  try {
    const cfg = await loadConfig(file, { sets });
    validateRunConfig(cfg, reg);
  } catch (e) {
    assert.ok(isUserError(e), `a UserError, got ${(e as Error).stack}`);
    return e as ConfigError;
  }
  assert.fail(`no error for --set ${sets.join(' ')}`);
}

test('an unknown key a --set created is blamed on that --set, not on the file', async () => {
  const e = await configError(['experiment.steps=10', 'experiment.nope.deep=1']);
  assert.equal(e.issues.length, 1);
  assert.deepEqual(e.issues[0].origin, { set: 2 });
  assert.match(e.message, /^--set #2 experiment\.nope: unknown key "nope"/);
  const top = await configError(['trainer.lr=1']);
  assert.deepEqual(top.issues[0].origin, { set: 1 });
  assert.match(top.message, /^--set #1 trainer: unknown key "trainer"/);
});

test('a list index on a value that is not a list says what the value is', async () => {
  const e = await configError(['experiment.steps[3]=1']);
  assert.match(e.message, /--set #1 experiment\.steps: --set "experiment\.steps\[3\]=1": index \[3\] needs a list, but experiment\.steps is a number/);
  assert.doesNotMatch(e.message, /0 elements/);
  const range = await configError(['tags=[a]', 'experiment.loss.type=x', 'tags[5]=b']);
  assert.match(range.message, /--set #3 tags\[5\]: .*index 5 is out of range \(the list has 1 element; index 1 appends\)/);
});

test('an empty --set value is an error (deletion is ~), and ~ still deletes', async () => {
  const e = await configError(['experiment.lr=']);
  assert.match(e.message, /--set #1 experiment\.lr: --set "experiment\.lr=": empty value \(to delete the key write `~`/);
  const blank = await configError(['experiment.lr=  ']);
  assert.match(blank.message, /empty value/);
  const deleted = await loadConfig(QUICKSTART, { sets: ['experiment.lr=~'] });
  assert.equal('lr' in (deleted.value.experiment as Record<string, unknown>), false);
  const emptyString = await loadConfig(QUICKSTART, { sets: ["name=''"] });
  assert.equal(emptyString.value.name, '');
});

test('an empty YAML file is named, directly and through extends', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rass-empty-'));
  writeFileSync(join(dir, 'empty.yaml'), '# nothing but a comment\n');
  writeFileSync(join(dir, 'child.yaml'), 'extends: empty.yaml\nname: x\n');
  const direct = await configError([], join(dir, 'empty.yaml'));
  assert.equal(direct.issues[0].origin?.file, join(dir, 'empty.yaml'));
  assert.match(direct.message, /empty\.yaml: the file is empty/);
  const via = await configError([], join(dir, 'child.yaml'));
  assert.match(via.message, /child\.yaml:1:1 extends: config file .*empty\.yaml is empty/);
});

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? yamlFiles(p) : n.endsWith('.yaml') ? [p] : [];
  });
}

test('rass validate passes every shipped config; _base_ files are validated as the fragments they are', async () => {
  const files = yamlFiles(join(process.cwd(), 'configs'));
  assert.ok(files.length >= 13, `only ${files.length} configs`);
  const r = await runCliCaptured(['validate', ...files], [registryPackage, experimentsPackage]);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.equal(lines.length, files.length, r.out);
  for (const f of files) {
    const line = lines.find((l) => l.startsWith(`ok ${f}`));
    assert.ok(line, `no ok line for ${f}:\n${r.out}\n${r.err}`);
    if (f.includes('/_base_/')) assert.match(line, /\(fragment: (a [a-z]+\/[\w-]+ component|fills `[\w.]+`); \d+ components? valid/);
  }
  assert.match(r.out, /sd21-base\.yaml \(fragment: fills `vars\.model`; 3 components valid; a run needs SD21_BASE_PATH set\)/);
  assert.match(r.out, /degradations\/rass-full\.yaml \(fragment: a degradation\/pipeline component; \d+ components valid\)/);
});

test('rass validate still finds mistakes inside a fragment, with file:line:col', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rass-frag-'));
  mkdirSync(join(dir, '_base_', 'models'), { recursive: true });
  writeFileSync(join(dir, '_base_/models/bad.yaml'), 'model:\n  vae: { type: backbone/autoencoder-kl, preset: tiny, bogus: 1 }\n');
  writeFileSync(join(dir, 'pipeline.yaml'), 'type: degradation/pipeline\nscale: x\nstages: []\n');
  writeFileSync(join(dir, 'run.yaml'), 'name: no-experiment\n');
  const r = await runCliCaptured(['validate', join(dir, '_base_/models/bad.yaml'), join(dir, 'pipeline.yaml'), join(dir, 'run.yaml')], [registryPackage, experimentsPackage]);
  assert.equal(r.code, 2);
  assert.match(r.err, /bad\.yaml:2:\d+ model\.vae\.bogus: unknown key "bogus"/);
  assert.match(r.err, /pipeline\.yaml:2:1 scale: expected integer, got string "x"/);
  // a file outside _base_/ that is not a component is a run config: its missing experiment is reported
  assert.match(r.err, /FAIL .*run\.yaml[\s\S]*missing required key "experiment"/);
  assert.match(r.err, /error: 3 of 3 config files invalid/);
});
