/**
 * The benches' lockstep harness (bench/_lockstep.ts + scripts/bench/lockstep.py): ours and the
 * peer's steps alternate, each timed on its own side, after the settle pause; errors and a
 * crashing peer reject instead of hanging.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { alternate, LockstepPeer, median } from '../../../bench/_lockstep.js';

const helper = join(process.cwd(), 'scripts', 'bench');
/** A Python peer: `step` sleeps 30 ms and returns a counter; `boom` raises; settle 200 ms. */
const PEER = `
import sys, time
sys.path.insert(0, ${JSON.stringify(helper)})
from lockstep import serve
n = [0]
def step():
    time.sleep(0.03)
    n[0] += 1
    return float(n[0])
def boom():
    raise RuntimeError('the peer failed on purpose')
serve({'step': step, 'boom': boom, 'quiet': lambda: None}, {'who': 'test-peer'}, settle=0.2)
`;

const start = () => LockstepPeer.start('python3', ['-c', PEER]);

test('a peer step is timed on the peer (the pipe excluded), answers in order, and the ready line carries info and settle', async () => {
  const { peer, info } = await start();
  try {
    assert.equal(info.who, 'test-peer');
    assert.deepEqual(info.serves, ['boom', 'quiet', 'step']);
    assert.equal(peer.settleS, 0.2);
    const a = await peer.step();
    const b = await peer.step();
    assert.deepEqual([a.loss, b.loss], [1, 2]);
    // the peer's own clock around a 30 ms sleep (the 200 ms settle is before it, not counted)
    for (const s of [a, b]) assert.ok(s.step_s >= 0.03 && s.step_s < 0.2, `step_s ${s.step_s}`);
    const q = await peer.step('quiet');
    assert.ok(Number.isNaN(q.loss), 'a handler returning None gives NaN');
    await assert.rejects(peer.step('nope'), /unknown request 'nope'/);
    assert.equal((await peer.step()).loss, 3, 'the peer still serves after an unknown request');
  } finally {
    await peer.close();
  }
});

test('a peer that dies rejects the pending and later steps with its stderr, instead of hanging', async () => {
  const { peer } = await start();
  await assert.rejects(peer.step('boom'), (e: Error) => e.message.includes('exited') && e.message.includes('the peer failed on purpose'));
  await assert.rejects(peer.step(), /exited/);
  await peer.close(); // already gone: returns
});

test('alternate runs ours then the peer each round, skips warm-up rounds, and takes medians', async () => {
  const { peer } = await start();
  const order: string[] = [];
  try {
    const busyMs = [60, 60, 60, 2, 2]; // ours: three slow rounds, the first two of them warm-up
    const t0 = performance.now();
    const r = await alternate(
      5,
      2,
      (i) => {
        order.push(`ours${i}`);
        const end = performance.now() + busyMs[i]!;
        while (performance.now() < end);
      },
      peer,
    );
    assert.deepEqual(r.peerSteps.map((p) => p.loss), [1, 2, 3, 4, 5], 'one peer step per round, in order');
    assert.deepEqual(order, ['ours0', 'ours1', 'ours2', 'ours3', 'ours4']);
    // rounds 2-4 of ours: 60, 2, 2 ms -> median 2 ms (all five rounds would give 60)
    assert.ok(r.ours >= 0.002 && r.ours < 0.03, `ours ${r.ours}`);
    assert.ok(r.peer! >= 0.03 && r.peer! < 0.2, `peer ${r.peer}`);
    // both sides waited out the settle before each of their steps: 2 x 5 x 200 ms, plus the peer's sleeps
    assert.ok(performance.now() - t0 >= 2 * 5 * 200 + 5 * 30, 'settle before each step on both sides');
  } finally {
    await peer.close();
  }
  const alone = await alternate(3, 0, () => {}, null);
  assert.equal(alone.peer, null);
  assert.equal(alone.peerSteps.length, 0);
});

test('serveSteps (a Node step process) answers steps with its own time and CPU time, stats with extras, and a failing step with its error', async () => {
  const lib = pathToFileURL(join(process.cwd(), 'dist', 'bench', '_lockstep.js')).href;
  // a 40 ms busy step (CPU time ~ wall time) and a step that throws
  const child = `
    import { serveSteps } from ${JSON.stringify(lib)};
    let n = 0;
    await serveSteps(
      { step: () => { const end = performance.now() + 40; while (performance.now() < end); return ++n; }, bad: () => { throw new Error('broken on purpose'); } },
      { who: 'node-side' },
      { settleS: 0.2, stats: () => ({ steps: n }) },
    );`;
  const { peer, info } = await LockstepPeer.start(process.execPath, ['--input-type=module', '-e', child]);
  try {
    assert.equal(info.who, 'node-side');
    assert.equal(peer.settleS, 0.2);
    const t0 = performance.now();
    const a = await peer.step();
    assert.ok(performance.now() - t0 >= 240, 'the settle pause comes before the step');
    assert.equal(a.loss, 1);
    assert.ok(a.step_s >= 0.04 && a.step_s < 0.2, `step_s ${a.step_s} (the pause not counted)`);
    assert.ok(a.cpu_s >= 0.02 && a.cpu_s < 0.2, `cpu_s ${a.cpu_s}`);
    await assert.rejects(peer.step('bad'), /bad failed: Error: broken on purpose/);
    assert.equal((await peer.step()).loss, 2, 'still serving after a failed step');
    const st = await peer.stats();
    assert.equal(st.steps, 2);
    assert.ok(st.peak_rss_mb > 10 && st.peak_rss_mb < 4096, `peak_rss_mb ${st.peak_rss_mb}`);
  } finally {
    await peer.close();
  }
});

test('median takes the upper middle value and leaves its input unsorted', () => {
  const xs = [5, 1, 4, 2];
  assert.equal(median(xs), 4);
  assert.deepEqual(xs, [5, 1, 4, 2]);
  assert.equal(median([3, 1, 2]), 2);
});
