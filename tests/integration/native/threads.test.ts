import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { nativeSkipReason } from './_native.js';

/**
 * `threads` sizes native TensorFlow's pools. TensorFlow creates them once per process, so
 * each count runs in its own child: it loads the backend with that count, runs a matmul and
 * reports the count the engine recorded and the process's OS threads. One intra-op and one
 * inter-op pool of n threads each: going from 1 to 3 must add 4 OS threads.
 */
function probe(threads: number, env: Record<string, string> = {}): { recorded: number; os: number; tag: string } {
  const backend = join(process.cwd(), 'dist/framework/engine/backend.js');
  const script = `
    const { initBackend, backendRunTags, tf } = await import(${JSON.stringify(backend)});
    const { readdirSync } = await import('node:fs');
    const c = await initBackend({ prefer: 'tensorflow', threads: ${threads}, log: null });
    const a = tf.ones([256, 256]);
    tf.matMul(a, a).dataSync();
    console.log(JSON.stringify({ recorded: c.threads, os: readdirSync('/proc/self/task').length, tag: backendRunTags(c)['rass.backend.threads'] }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, TF_NUM_INTRAOP_THREADS: '', TF_NUM_INTEROP_THREADS: '', ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as { recorded: number; os: number; tag: string };
}

describe('native TensorFlow threads follow the threads option', () => {
  it('1 vs 3 threads: recorded, tagged, and TensorFlow starts 2 x 2 more OS threads', (t) => {
    const skip = nativeSkipReason();
    if (skip) return t.skip(skip);
    const one = probe(1);
    const three = probe(3);
    assert.equal(one.recorded, 1);
    assert.equal(three.recorded, 3);
    assert.equal(three.tag, '3');
    assert.equal(three.os - one.os, 4, `OS threads: ${one.os} with 1, ${three.os} with 3`);
    // RASS_THREADS is the default when no count is given
    assert.equal(probe(0, { RASS_THREADS: '2' }).recorded, 2);
  });
});
