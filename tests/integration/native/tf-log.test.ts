/**
 * TensorFlow's start-up notices (absl "log messages before InitializeLog", oneDNN, CPU
 * features) stay out of every command's output unless RASS_TF_LOG asks for them, whatever
 * TF_CPP_MIN_LOG_LEVEL the environment carries. Child processes: the C++ side reads its log
 * level once, when the binding loads. Not covered, and not silenced: on CPUs where TensorFlow
 * turns oneDNN on by default, its "oneDNN custom operations are on" line is printed before
 * TensorFlow's log level applies; this test pins oneDNN off (_onednn-off.ts).
 */
import './_onednn-off.js';
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { nativeSkipReason } from './_native.js';

const skip = nativeSkipReason();
const backendJs = pathToFileURL(join(process.cwd(), 'dist/framework/engine/backend.js')).href;
// load the native backend the way every command does, and compute something
const code = `const { initBackend } = await import(${JSON.stringify(backendJs)});
const tf = await import('@tensorflow/tfjs-core');
const c = await initBackend({ prefer: 'tensorflow', log: null });
tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dataSync();
console.log('backend', c.name);`;

function stderrOf(script: string, env: Record<string, string>): string {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'RASS_TF_LOG' && k !== 'TF_CPP_MIN_LOG_LEVEL')) as Record<string, string>;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), env: { ...base, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}
const stderrWith = (env: Record<string, string>) => stderrOf(code, env);

// the binding loaded directly, bypassing rass: what TensorFlow prints when nobody quiets it
const raw = `import { createRequire } from 'node:module';
const tf = createRequire(${JSON.stringify(join(process.cwd(), 'native', 'package.json'))})('@tensorflow/tfjs-node');
tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dataSync();`;

const NOTICE = /absl::InitializeLog|cpu_feature_guard|oneDNN|^[IW]\d{4} /m;

it('TensorFlow notices are silenced unless RASS_TF_LOG is set', { skip }, (t) => {
  if (!existsSync(join(process.cwd(), 'native', 'build-info.json')) || !NOTICE.test(stderrOf(raw, { TF_CPP_MIN_LOG_LEVEL: '0' }))) {
    t.skip('this TensorFlow build prints no start-up notices here: nothing to silence');
    return;
  }
  assert.doesNotMatch(stderrWith({}), NOTICE);
  // an environment that turned TensorFlow's own logging up does not bring them back either
  assert.doesNotMatch(stderrWith({ TF_CPP_MIN_LOG_LEVEL: '0' }), NOTICE);
  // asked for: they are there
  assert.match(stderrWith({ RASS_TF_LOG: '1' }), NOTICE);
});
