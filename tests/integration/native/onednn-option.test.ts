/**
 * Config `onednn` (initBackend's `onednn`): 'on'/'off' set TensorFlow's oneDNN ops for the
 * process before the native backend loads, and the choice shows in the backend log line and
 * the run tag `rass.backend.onednn`; a second request in the same process says it applies to
 * a new one. Each case in its own process (TensorFlow reads the setting once).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { nativeSkipReason } from './_native.js';

const backendJs = pathToFileURL(join(process.cwd(), 'dist/framework/engine/backend.js')).href;
const script = (choice: string) => `const { initBackend, backendRunTags } = await import(${JSON.stringify(backendJs)});
const lines = [];
const c = await initBackend({ prefer: 'tensorflow', onednn: '${choice}', log: (l) => lines.push(l) });
const other = '${choice}' === 'on' ? 'off' : 'on';
await initBackend({ prefer: 'tensorflow', onednn: other, log: (l) => lines.push(l) });
console.log(JSON.stringify({ onednn: c.onednn, tag: backendRunTags(c)['rass.backend.onednn'], env: process.env.TF_ENABLE_ONEDNN_OPTS, lines }));`;

function run(choice: string): { onednn: string; tag: string; env: string; lines: string[] } {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'TF_ENABLE_ONEDNN_OPTS')) as Record<string, string>;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script(choice)], { cwd: process.cwd(), env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
}

it('onednn: on / off set TensorFlow oneDNN before the backend loads, log it, tag it, and say when it is too late', { skip: nativeSkipReason() }, () => {
  for (const [choice, env] of [['off', '0'], ['on', '1']] as const) {
    const r = run(choice);
    assert.equal(r.env, env);
    assert.equal(r.onednn, choice);
    assert.equal(r.tag, choice);
    assert.ok(r.lines.some((l) => l.includes(`oneDNN ${choice}`)), r.lines.join('\n'));
    assert.ok(r.lines.some((l) => l.includes('applies to a new process')), r.lines.join('\n'));
  }
});
