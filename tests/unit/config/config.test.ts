import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { loadConfig, applyOverrides, dumpConfig, buildComponent, ConfigError, formatOrigin } from '../../../framework/config/index.js';
import { validateRunConfig } from '../../../framework/runner/run-config.js';
import { PluginRegistry } from '../../../framework/plugins/registry.js';
import { consoleLogger } from '../../../framework/plugins/context.js';
import { testPackage } from './_plugins.js';

// compiled tests run from dist/tests/...; fixtures stay in the source tree (tests run from the repo root)
const fixture = (p: string) => join(process.cwd(), 'tests/fixtures/config', p);

function registry() {
  const r = new PluginRegistry();
  r.loadPackage(testPackage);
  return r;
}

async function errorOf(p: Promise<unknown> | (() => unknown)): Promise<ConfigError> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a ConfigError');
}

test('three-level extends chain, patch by id, deletion and --set resolve to the expected object', async () => {
  const cfg = await loadConfig(fixture('chain/leaf.yaml'), { sets: ['experiment.optimizer.lr=3e-4', 'experiment.stages[0].prob=0.75', 'seed=~', 'experiment.tags=[a, b]'] });
  assert.deepEqual(cfg.value, {
    experiment: {
      type: 'experiment/train',
      optimizer: { lr: 3e-4, betas: [0.5, 0.6], weight_decay: 0.05 },
      stages: [
        { id: 'blur', prob: 0.75 },
        { id: 'noise', prob: 0.25 },
        { id: 'jpeg', prob: 0.9 },
      ],
      steps: 10,
      tags: ['a', 'b'],
    },
    name: 'leaf-run',
  });
  assert.equal(cfg.files.length, 3);
  assert.match(formatOrigin(cfg.origin(['experiment', 'optimizer', 'weight_decay'])), /chain\/middle\.yaml:5:5 \(via .*chain\/leaf\.yaml\)$/);
  assert.match(formatOrigin(cfg.origin(['experiment', 'optimizer', 'betas'])), /chain\/leaf\.yaml:5:5$/);
  assert.equal(formatOrigin(cfg.origin(['experiment', 'optimizer', 'lr'])), '--set #1');
  assert.match(formatOrigin(cfg.origin(['experiment', 'stages', 2, 'prob'])), /middle\.yaml:10:7/);
  assert.match(formatOrigin(cfg.origin(['experiment', 'stages', 1, 'prob'])), /middle\.yaml:8:7/);
  assert.match(formatOrigin(cfg.origin(['experiment', 'stages', 0, 'id'])), /base\.yaml:7:7 \(via .*middle\.yaml <- .*leaf\.yaml\)/);
  // the dump shows origins
  const dump = dumpConfig(cfg, { origins: true });
  assert.match(dump, /lr: 0\.0003 # --set #1/);
  assert.match(dump, /weight_decay: 0\.05 # .*middle\.yaml:5:5/);
  // applyOverrides numbers further sets after the first ones
  const more = applyOverrides(cfg, ['experiment.steps=20']);
  assert.equal((more.value.experiment as { steps: number }).steps, 20);
  assert.equal(formatOrigin(more.origin(['experiment', 'steps'])), '--set #5');
  assert.equal((cfg.value.experiment as { steps: number }).steps, 10, 'original untouched');
});

test('an extends cycle is rejected with the chain printed', async () => {
  const e = await errorOf(loadConfig(fixture('cycle/a.yaml')));
  assert.match(e.message, /extends cycle: .*cycle\/a\.yaml -> .*cycle\/b\.yaml -> .*cycle\/c\.yaml -> .*cycle\/a\.yaml/);
  assert.match(e.message, /cycle\/c\.yaml:1:1/);
});

test('an error in an extended file names that file, line and column, and the child', async () => {
  const cfg = await loadConfig(fixture('bad/child.yaml'));
  const e = await errorOf(() => validateRunConfig(cfg, registry()));
  assert.equal(e.issues.length, 1);
  assert.match(e.message, /bad\/base\.yaml:5:5 experiment\.optimizer\.lr: expected number, got string "fast" \(via .*bad\/child\.yaml\)/);
});

test('three schema violations are all reported, an unknown key gets a suggestion', async () => {
  const cfg = await loadConfig(fixture('bad/three.yaml'));
  const e = await errorOf(() => validateRunConfig(cfg, registry()));
  const lines = e.issues.map((i) => `${formatOrigin(i.origin)} ${i.path}: ${i.message}`);
  assert.equal(e.issues.length, 3, lines.join('\n'));
  assert.ok(lines.some((l) => /three\.yaml:3:3 experiment\.steps: must be >= 1, got number -3/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /three\.yaml:6:5 experiment\.optimizer\.momentun: unknown key "momentun" \(did you mean "momentum"\?\)/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /three\.yaml:9:5 experiment\.loss\.weight: expected number, got string "2"/.test(l)), lines.join('\n'));
});

test('defaults are applied (also for nested component nodes) and components build with origins', async () => {
  const cfg = await loadConfig(fixture('chain/leaf.yaml'));
  const reg = registry();
  validateRunConfig(cfg, reg);
  const exp = cfg.value.experiment as Record<string, any>;
  assert.deepEqual(exp.loss, { type: 'loss/mse', weight: 1 });
  assert.equal(cfg.value.seed, 1);
  assert.equal(cfg.value.backend, 'auto');
  const built = await buildComponent<{ o: Record<string, unknown> }>(exp as never, reg, { seed: 0, log: consoleLogger, cfg });
  assert.equal(built.o.steps, 10);
  assert.equal('type' in built.o, false);
  const loss = await buildComponent<{ weight: number; path: string; file: string }>(exp.loss, reg, { seed: 0, log: consoleLogger, cfg, path: 'experiment.loss' });
  assert.equal(loss.path, 'experiment.loss');
  // the path, not the node's identity, finds its origin: a copy (as pipeline stages make) resolves
  // relative paths against the file that wrote it, not the working directory
  const origin = cfg.origin(['experiment', 'loss']);
  assert.ok(origin?.file, 'experiment.loss has a file origin');
  const copy = await buildComponent<{ file: string }>(structuredClone(exp.loss), reg, { seed: 0, log: consoleLogger, cfg, path: 'experiment.loss', cwd: '/nowhere' });
  assert.equal(copy.file, join(dirname(origin.file), 'w.bin'));
  // the kind check happens in the build, with the node's origin
  await assert.rejects(buildComponent(exp.loss, reg, { seed: 0, log: consoleLogger, cfg, path: 'experiment.loss', expectKind: 'head' }), /base\.yaml:\d+:\d+ \(via .*leaf\.yaml\) experiment\.loss: expected a head plugin, got "loss\/mse"/);
});

test('interpolation: typed whole references, embedded strings, env with default, escapes; a missing key is named', async () => {
  const cfg = await loadConfig(fixture('interp.yaml'), { env: { RASS_TEST_HOME: '/home/x' } });
  const exp = cfg.value.experiment as Record<string, unknown>;
  assert.equal(exp.steps, 64);
  assert.equal(exp.data_dir, '/data/ade');
  assert.equal(exp.home, '/home/x');
  assert.equal(exp.fallback, 'none');
  assert.equal(exp.literal, '${not.interpolated}');
  const late = await loadConfig(fixture('interp.yaml'), { env: { RASS_TEST_HOME: 'h' }, sets: ['vars.width=128'] });
  assert.equal((late.value.experiment as Record<string, unknown>).steps, 128, 'interpolation runs after --set');
  const e = await errorOf(loadConfig(fixture('missing-ref.yaml')));
  assert.match(e.message, /missing-ref\.yaml:3:3 experiment\.steps: \$\{vars\.nope\} refers to a key that does not exist/);
  const e2 = await errorOf(loadConfig(fixture('interp.yaml'), { env: {} }));
  assert.match(e2.message, /environment variable RASS_TEST_HOME is not set/);
});

test('bad input: missing file, YAML syntax error, unknown plugin, bad --set', async () => {
  const e1 = await errorOf(loadConfig(fixture('nope.yaml')));
  assert.match(e1.message, /cannot read config file .*nope\.yaml: no such file/);
  const e2 = await errorOf(loadConfig(fixture('bad/syntax.yaml')));
  assert.match(e2.message, /bad\/syntax\.yaml:\d+:\d+: YAML syntax error/);
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  writeFileSync(join(dir, 'u.yaml'), 'experiment:\n  type: experiment/trian\n  steps: 1\n');
  const cfg = await loadConfig(join(dir, 'u.yaml'));
  const e3 = await errorOf(() => validateRunConfig(cfg, registry()));
  assert.match(e3.message, /u\.yaml:2:3 experiment\.type: unknown plugin experiment\/trian \(did you mean "train"\?\)/);
  writeFileSync(join(dir, 'm.yaml'), 'extends: missing-base.yaml\nseed: 1\n');
  const e4 = await errorOf(loadConfig(join(dir, 'm.yaml')));
  assert.match(e4.message, /m\.yaml:1:1 extends: cannot read config file .*missing-base\.yaml: no such file/);
  const e5 = await errorOf(loadConfig(fixture('chain/leaf.yaml'), { sets: ['experiment.stages[7].prob=1'] }));
  assert.match(e5.message, /--set #1 experiment\.stages\[7\]: --set "experiment\.stages\[7\]\.prob=1": index 7 is out of range/);
  const e6 = await errorOf(loadConfig(fixture('chain/leaf.yaml'), { sets: ['noequals'] }));
  assert.match(e6.message, /expected path\.to\.key=value/);
});
