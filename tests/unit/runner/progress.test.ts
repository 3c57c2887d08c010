/** Progress display: plain lines at most every interval (and at the end) off a TTY; a redrawn bar on a TTY. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createProgress } from '../../../framework/output/progress.js';

function capture(isTTY: boolean) {
  const s = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  s.isTTY = isTTY;
  s.columns = 100;
  let text = '';
  s.on('data', (b) => (text += b));
  return { s, text: () => text };
}

describe('progress', () => {
  it('off a TTY prints a plain line at most every interval, and a final one', () => {
    let now = 0;
    const c = capture(false);
    const p = createProgress('train', 100, { stream: c.s, now: () => now, intervalMs: 10_000 });
    for (let i = 0; i < 100; i++) {
      now += 500; // 100 ticks over 50 s: first tick, then one line per 10 s
      p.tick(1, `loss ${i}`);
    }
    p.done();
    const lines = c.text().trim().split('\n');
    assert.ok(!c.text().includes('\r'), 'no carriage returns in plain mode');
    // t=0.5s (first), 10.5, 20.5, 30.5, 40.5, and done at 50
    assert.equal(lines.length, 6, lines.join('\n'));
    assert.match(lines[0], /^train: 1\/100 1% /);
    assert.match(lines[5], /^train: 100\/100 100% 2\.0\/s elapsed 50s loss 99$/);
  });

  it('on a TTY redraws one line with a bar and an ETA', () => {
    let now = 0;
    const c = capture(true);
    const p = createProgress('eval', 10, { stream: c.s, now: () => now, plain: false });
    for (let i = 0; i < 5; i++) {
      now += 1000;
      p.tick();
    }
    const t = c.text();
    assert.ok(t.startsWith('\r'));
    assert.match(t, /eval \[#{12}\.{12}\] 5\/10 50% 1\.0\/s elapsed 5\.0s eta 5\.0s/);
    p.done();
    assert.ok(c.text().endsWith('\n'));
  });
});
