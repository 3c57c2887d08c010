import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SyncWorker, helperResult, helperState, sharedHelper } from '../../../framework/engine/sync-worker.js';

type Job = { kind: 'double' | 'throw' | 'exit'; x: number; payload?: Float32Array };
type Result = { doubled: number; big: Float32Array; payloadSum: number };
const url = new URL('../../helpers/sync-worker-echo.js', import.meta.url);

/** What `fn` writes to stderr (the one-line helper notices), one entry per write. */
function stderrOf(fn: () => void): string[] {
  const said: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => (said.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = write;
  }
  return said;
}

function start(): SyncWorker<Job, Result> {
  const w = SyncWorker.start<Job, Result>(url);
  if ('error' in w) throw new Error(w.error);
  return w;
}

test('SyncWorker: jobs come back synchronously while the caller works on, in order, typed arrays intact', () => {
  const w = start();
  try {
    for (const x of [3, 1000, 7]) {
      w.post({ kind: 'double', x });
      let busy = 0;
      for (let i = 0; i < 1e5; i++) busy += i; // the caller's own share of the work
      const r = w.wait();
      assert.equal(r.doubled, 2 * x);
      assert.ok(r.big instanceof Float32Array && r.big.length === x && r.big[x - 1] === x);
      assert.ok(busy > 0);
    }
    assert.throws(() => w.wait(), /no job is out/);
    w.post({ kind: 'double', x: 1 });
    assert.throws(() => w.post({ kind: 'double', x: 2 }), /already out/);
    assert.equal(w.wait().doubled, 2);
  } finally {
    w.dispose();
  }
});

test('SyncWorker: buffers named for transfer move to the helper, and the result comes back intact', () => {
  const w = start();
  try {
    const payload = Float32Array.from({ length: 1000 }, (_, i) => i);
    w.post({ kind: 'double', x: 4, payload }, [payload.buffer]);
    assert.equal(payload.byteLength, 0, 'moved, not copied');
    const r = w.wait();
    assert.equal(r.payloadSum, (999 * 1000) / 2);
    assert.deepEqual(Array.from(r.big), [4, 4, 4, 4]);
  } finally {
    w.dispose();
  }
});

test("SyncWorker: the helper's error is rethrown with its message, and the helper keeps serving", () => {
  const w = start();
  try {
    w.post({ kind: 'throw', x: 42 });
    assert.throws(() => w.wait(), /helper thread: Error: refused 42/);
    w.post({ kind: 'double', x: 5 });
    assert.equal(w.wait().doubled, 10);
  } finally {
    w.dispose();
  }
});

test('SyncWorker: a helper that exits wakes the caller with an error instead of leaving it asleep', () => {
  const w = start();
  try {
    w.post({ kind: 'exit', x: 0 });
    const t0 = Date.now();
    assert.throws(() => w.wait(30_000), /helper thread exited/);
    assert.ok(Date.now() - t0 < 10_000, 'woken by the exit, not by the timeout');
    assert.throws(() => w.post({ kind: 'double', x: 1 }), /helper thread is gone/);
  } finally {
    w.dispose();
  }
});

test('sharedHelper: a helper that died between jobs is dropped (null, said once), not handed out to fail on post', async () => {
  // a URL of its own (a query string) so other tests' shared helper is untouched
  const own = new URL(`${url.href}?idle-death`);
  const w = sharedHelper<Job, Result>(own, 'echo', 2);
  assert.ok(w, 'started');
  w.post({ kind: 'double', x: 2 });
  assert.equal(w.wait().doubled, 4);
  w.dispose(); // the thread ends while no job is out
  for (let i = 0; i < 100 && !w.gone; i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(w.gone, 'the exit was noticed');
  const said = stderrOf(() => {
    assert.equal(sharedHelper<Job, Result>(own, 'echo', 2), null);
    assert.equal(sharedHelper<Job, Result>(own, 'echo', 2), null);
  });
  assert.match(helperState(own), /^unavailable: exited/);
  assert.equal(said.length, 1, said.join(''));
  assert.match(said[0] ?? '', /echo: the helper thread failed \(exited with code/);
});

test('helperResult: the job\'s result, or null after a failure (logged once, the helper retired)', () => {
  const own = new URL(`${url.href}?result`);
  const w = sharedHelper<Job, Result>(own, 'echo', 2);
  assert.ok(w);
  w.post({ kind: 'double', x: 3 });
  assert.equal(helperResult(w, own, 'echo')?.doubled, 6);
  const said = stderrOf(() => {
    w.post({ kind: 'throw', x: 7 });
    assert.equal(helperResult(w, own, 'echo'), null);
    assert.equal(sharedHelper<Job, Result>(own, 'echo', 2), null, 'retired');
  });
  assert.match(helperState(own), /^unavailable: helper thread: Error: refused 7/);
  assert.equal(said.length, 1, said.join(''));
});
