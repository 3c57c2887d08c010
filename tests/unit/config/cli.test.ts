import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCliCaptured } from '../../helpers/cli.js';
import { testPackage } from './_plugins.js';

async function cli(args: string[]) {
  const r = await runCliCaptured(args, [testPackage]);
  return { code: r.code, stdout: r.out, stderr: r.err };
}
const fixture = (p: string) => join(process.cwd(), 'tests/fixtures/config', p);

test('rass config show prints the resolved config with defaults and origins', async () => {
  const r = await cli(['config', 'show', fixture('chain/leaf.yaml'), '--set', 'experiment.steps=12', '--origins']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /steps: 12 # --set #1/);
  assert.match(r.stdout, /weight: 1\b/); // default of the nested loss node
  assert.match(r.stdout, /weight_decay: 0\.05 # .*middle\.yaml:5:5/);
});

test('rass validate: ok files pass, bad files list every problem, exit code 2, no stack trace', async () => {
  const ok = await cli(['validate', fixture('chain/leaf.yaml')]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^ok .*leaf\.yaml/m);
  const bad = await cli(['validate', fixture('chain/leaf.yaml'), fixture('bad/three.yaml')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /FAIL .*three\.yaml \(3 problems\)/);
  assert.match(bad.stderr, /unknown key "momentun" \(did you mean "momentum"\?\)/);
  assert.match(bad.stderr, /error: 1 of 2 config files invalid/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace for user errors');
  const missing = await cli(['config', 'show', fixture('nope.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^error: cannot read config file .*nope\.yaml: no such file/);
});
