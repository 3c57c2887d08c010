/** The test helper that waits for a process group to be gone must fail when processes survive. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGroup } from '../../helpers/process-group.js';

test('groupGone throws, naming the survivor, while a process of the group lives; resolves once it is gone', async () => {
  // the leader starts a child in its own process group (not detached) that outlives it, then exits
  const child = "setTimeout(() => {}, 20000); process.stdout.write('')";
  const leader = `const c = require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify(child)}], { stdio: 'ignore' }); console.log('child ' + c.pid); c.unref();`;
  const job = startGroup(['-e', leader], { cwd: process.cwd() });
  assert.equal(await job.exited, 0);
  const childPid = Number(/child (\d+)/.exec(job.out())?.[1]);
  assert.ok(childPid > 0, job.out());
  try {
    await assert.rejects(job.groupGone(300), (e: Error) => e.message.includes(`process group ${job.pid} still has processes`) && e.message.includes(String(childPid)));
  } finally {
    job.signal('SIGKILL');
  }
  await job.groupGone(5000); // now empty: resolves
});
