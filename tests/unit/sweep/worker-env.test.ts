/** executor/local's worker environment: the cores shared out between the workers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { workerEnv } from '../../../framework/sweep/executors/local.js';

test('each worker gets floor(cores / workers) native threads, at least 1', () => {
  assert.equal(workerEnv({}, 2, 2).RASS_THREADS, '1');
  assert.equal(workerEnv({}, 1, 2).RASS_THREADS, '2');
  assert.equal(workerEnv({}, 3, 8).RASS_THREADS, '2');
  assert.equal(workerEnv({}, 4, 2).RASS_THREADS, '1');
  assert.equal(workerEnv({}, 0, 6).RASS_THREADS, '6', 'no parallelism given: one worker');
});

test('RASS_THREADS set for the sweep wins; the rest of the environment passes through, CI defaulting to true', () => {
  const env = workerEnv({ RASS_THREADS: '3', PATH: '/bin', CI: 'false' }, 2, 2);
  assert.deepEqual(env, { RASS_THREADS: '3', PATH: '/bin', CI: 'false' });
  assert.equal(workerEnv({}, 2, 2).CI, 'true');
});
