/**
 * Config groups (`--set model=x`, a file's `groups:`, a sweep axis over a group) and the error
 * for a key that two sibling bases of one `extends` list set differently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { loadConfig, applyOverrides, ConfigError, formatOrigin } from '../../../framework/config/index.js';
import { expandSweep, formatOverrides, parseSweepSpec } from '../../../framework/sweep/spec.js';

function tree(spec: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'rass-groups-'));
  for (const [name, text] of Object.entries(spec)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const GROUPS = {
  '_base_/models/small.yaml': 'vars:\n  model: { width: 8, depth: 2 }\n',
  '_base_/models/large.yaml': 'vars:\n  model: { width: 64, depth: 2 }\n',
  '_base_/datasets/shapes.yaml': 'vars:\n  data: { name: shapes }\n',
  '_base_/datasets/ade.yaml': 'vars:\n  data: { name: ade }\n',
  'exp/base.yaml': 'extends: [../_base_/models/small.yaml, ../_base_/datasets/shapes.yaml]\nexperiment: { width: "${vars.model.width}", data: "${vars.data.name}" }\n',
};

async function configError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message;
  }
  return assert.fail('expected a ConfigError');
}

test('--set model=large swaps the models base of the extends chain (singular or folder name)', async () => {
  const dir = tree(GROUPS);
  const plain = await loadConfig(join(dir, 'exp/base.yaml'));
  assert.deepEqual(plain.value.experiment, { width: 8, data: 'shapes' });
  const large = await loadConfig(join(dir, 'exp/base.yaml'), { sets: ['model=large', 'datasets=ade'] });
  assert.deepEqual(large.value.experiment, { width: 64, data: 'ade' });
  assert.match(formatOrigin(large.origin(['vars', 'model', 'width'])), /_base_\/models\/large\.yaml:2:/);
  assert.deepEqual([...large.groups].sort(), ['datasets', 'models']);
  // a later plain --set still applies on top, and is numbered after the selection
  const both = await loadConfig(join(dir, 'exp/base.yaml'), { sets: ['model=large', 'vars.model.width=3'] });
  assert.equal((both.value.experiment as { width: number }).width, 3);
  assert.equal(formatOrigin(both.origin(['vars', 'model', 'width'])), '--set #2');
});

test('a missing option or an unused group is an error naming the --set and the options', async () => {
  const dir = tree(GROUPS);
  assert.match(await configError(loadConfig(join(dir, 'exp/base.yaml'), { sets: ['model=larg'] })), /--set #1 groups: group "models" has no option "larg" \(did you mean "large"\?\); options: large, small/);
  const fileSel = tree({ ...GROUPS, 'exp/child.yaml': 'extends: base.yaml\ngroups: { schedule: fast }\n' });
  assert.match(await configError(loadConfig(join(fileSel, 'exp/child.yaml'))), /child\.yaml:2:\d+ groups: selects "fast" but no base .* belongs to that group \(extends or !include\); groups it uses: datasets, models/);
});

test('a file selects a group option for its bases with groups:, and the command line wins over it', async () => {
  const dir = tree({ ...GROUPS, 'exp/ade.yaml': 'extends: base.yaml\ngroups: { dataset: ade }\n' });
  const cfg = await loadConfig(join(dir, 'exp/ade.yaml'));
  assert.deepEqual(cfg.value.experiment, { width: 8, data: 'ade' });
  assert.equal(cfg.value.groups, undefined, 'groups: is consumed by the loader');
  const cli = await loadConfig(join(dir, 'exp/ade.yaml'), { sets: ['dataset=shapes'] });
  assert.deepEqual(cli.value.experiment, { width: 8, data: 'shapes' });
});

test('a sweep axis can range over a group: each trial config loads its option', async () => {
  const dir = tree(GROUPS);
  const cfg = await loadConfig(join(dir, 'exp/base.yaml'), { sets: ['seed=3'] });
  const trials = expandSweep(parseSweepSpec({ grid: { model: ['small', 'large'], 'vars.model.depth': [1, 4] } }));
  const widths = trials.map((t) => {
    const tc = applyOverrides(cfg, formatOverrides(t.overrides));
    const v = tc.value as { experiment: { width: number }; vars: { model: { depth: number } }; seed: number };
    assert.equal(v.seed, 3, 'the base config\'s own sets survive the reload');
    return [v.experiment.width, v.vars.model.depth];
  });
  assert.deepEqual(widths, [[8, 1], [8, 4], [64, 1], [64, 4]]);
});

test('two sibling bases setting one key differently is an error naming both places, unless the child sets it', async () => {
  const spec = {
    'a.yaml': 'experiment:\n  lr: 0.1\n  steps: 10\n',
    'b.yaml': 'experiment:\n  batch: 4\n  lr: 0.2\n',
    'same.yaml': 'experiment:\n  steps: 10\n',
    'shape.yaml': 'experiment:\n  steps: { warmup: 2 }\n',
  };
  const dir = tree({
    ...spec,
    'clash.yaml': 'extends: [a.yaml, b.yaml]\n',
    'chosen.yaml': 'extends: [a.yaml, b.yaml]\nexperiment: { lr: 0.3 }\n',
    'agree.yaml': 'extends: [a.yaml, same.yaml]\n',
    'mapclash.yaml': 'extends: [a.yaml, shape.yaml]\n',
  });
  const msg = await configError(loadConfig(join(dir, 'clash.yaml')));
  assert.match(msg, /clash\.yaml:1:\d+ experiment\.lr: "experiment\.lr" is set by two bases of one extends list: .*a\.yaml:2:3 .* and .*b\.yaml:3:3/);
  assert.doesNotMatch(msg, /batch|steps/);
  assert.equal(((await loadConfig(join(dir, 'chosen.yaml'))).value.experiment as { lr: number }).lr, 0.3);
  assert.equal(((await loadConfig(join(dir, 'agree.yaml'))).value.experiment as { steps: number }).steps, 10);
  assert.match(await configError(loadConfig(join(dir, 'mapclash.yaml'))), /"experiment\.steps" is set by two bases/);
});

test('--set of a key no file defines: accepted where a schema declares it, else it needs a leading +', async () => {
  const { PluginRegistry } = await import('../../../framework/plugins/registry.js');
  const { validateRunConfig } = await import('../../../framework/runner/run-config.js');
  const { testPackage } = await import('./_plugins.js');
  const reg = new PluginRegistry();
  reg.loadPackage(testPackage);
  const leaf = join(process.cwd(), 'tests/fixtures/config/chain/leaf.yaml');
  const validated = async (sets: string[]) => {
    const cfg = await loadConfig(leaf, { sets });
    validateRunConfig(cfg, reg);
    return cfg;
  };
  // declared by the experiment's schema (momentum) or the run schema (seed): fine without +
  assert.equal(((await validated(['experiment.optimizer.momentum=0.9', 'seed=5'])).value.experiment as { optimizer: { momentum: number } }).optimizer.momentum, 0.9);
  // vars is free-form: a new key there must be asked for
  const err = async (sets: string[]) => {
    try {
      await validated(sets);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return e.message;
    }
    return assert.fail(`expected an error for ${sets.join(' ')}`);
  };
  assert.match(await err(['vars.depht=3']), /--set #1 vars\.depht: no config file defines "vars\.depht"; to add a new key write --set \+vars\.depht=\.\.\./);
  const withVars = await validated(['+vars.depth=3']);
  assert.deepEqual(withVars.value.vars, { depth: 3 });
  // + on a key a file defines is refused, naming where it is defined
  assert.match(await err(['+experiment.steps=3']), /\+ adds a key, but experiment\.steps is already defined \(.*leaf\.yaml:6:3\); drop the \+/);
  // an unknown option inside a component is still the schema's did-you-mean (one message, not two)
  const typo = await err(['experiment.optimizer.lrr=1']);
  assert.match(typo, /unknown key "lrr" \(did you mean "lr"\?\)/);
  assert.doesNotMatch(typo, /no config file defines/);
});

test('a group option built on another option of its group is not a slot; an !include of a group file is', async () => {
  const dir = tree({
    '_base_/degradations/full.yaml': 'type: pipe\nstages:\n  - { id: usm }\n  - { id: blur }\n',
    '_base_/degradations/lite.yaml': 'extends: full.yaml\nstages: !patch\n  - { id: usm, $delete: true }\n',
    '_base_/degradations/none.yaml': 'type: pipe\nstages: []\n',
    'exp/run.yaml': 'experiment:\n  degradation: !include ../_base_/degradations/lite.yaml\n',
  });
  const plain = await loadConfig(join(dir, 'exp/run.yaml'));
  assert.deepEqual((plain.value.experiment as { degradation: unknown }).degradation, { type: 'pipe', stages: [{ id: 'blur' }] });
  assert.deepEqual([...plain.groups], ['degradations'], 'the include is the slot; lite -> full inside the group is not');
  const none = await loadConfig(join(dir, 'exp/run.yaml'), { sets: ['degradation=none'] });
  assert.deepEqual((none.value.experiment as { degradation: unknown }).degradation, { type: 'pipe', stages: [] });
  // selecting the option that extends another one of its group does not swap that base (no cycle)
  const lite = await loadConfig(join(dir, 'exp/run.yaml'), { sets: ['degradation=lite'] });
  assert.deepEqual((lite.value.experiment as { degradation: unknown }).degradation, { type: 'pipe', stages: [{ id: 'blur' }] });
});

test('set edge cases: a map the schema opens takes new keys; deleting a list element keeps the others\' origins; ~ below a missing key creates nothing', async () => {
  const { PluginRegistry } = await import('../../../framework/plugins/registry.js');
  const { validateRunConfig } = await import('../../../framework/runner/run-config.js');
  const { testPackage } = await import('./_plugins.js');
  const reg = new PluginRegistry();
  reg.loadPackage(testPackage);
  const leaf = join(process.cwd(), 'tests/fixtures/config/chain/leaf.yaml');
  const tagged = await loadConfig(leaf, { sets: ['tags.owner=me'] });
  validateRunConfig(tagged, reg); // the run schema's tags map has additionalProperties
  assert.deepEqual(tagged.value.tags, { owner: 'me' });
  const before = await loadConfig(leaf);
  const originOfJpeg = formatOrigin(before.origin(['experiment', 'stages', 2, 'prob']));
  const cut = await loadConfig(leaf, { sets: ['experiment.stages[1]=~'] });
  assert.deepEqual((cut.value.experiment as { stages: { id: string }[] }).stages.map((s) => s.id), ['blur', 'jpeg']);
  assert.equal(formatOrigin(cut.origin(['experiment', 'stages', 1, 'prob'])), originOfJpeg, 'jpeg keeps its origin at its new index');
  const nothing = await loadConfig(leaf, { sets: ['vars.a.b=~'] });
  assert.equal(nothing.value.vars, undefined);
});
