/**
 * Fault tolerance against a real MLflow server: killed mid-run and restarted, answering
 * 500/429 for a while (through a fault-injecting proxy), down for the whole run; and
 * credentials never reaching run files or logs.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MlflowClient, clientOptionsFromEnv } from '../../../framework/tracking/mlflow/client.js';
import { readState } from '../../../framework/tracking/mlflow/state.js';
import { MlflowTracker } from '../../../framework/tracking/mlflow/tracker.js';
import { syncRuns } from '../../../framework/tracking/sync.js';
import { type MlflowServer, freePort, mlflowSkipped, startMlflowServer } from '../../../scripts/mlflow/server.js';
import { type TcpProxy, TestRun, startFaultProxy, startTcpProxy, removeTempStores, tempStore } from './helpers.js';
import { assertMirrors } from './mirror-assert.js';

const skip = mlflowSkipped();
const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 100 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function allFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? allFiles(join(dir, f)) : [join(dir, f)]));
}

describe('MLflow tracking under faults', { skip }, () => {
  let server: MlflowServer;
  let client: MlflowClient;
  before(async () => {
    server = await startMlflowServer();
    client = new MlflowClient({ uri: server.uri, retry: FAST_RETRY });
  });
  after(async () => {
    await server?.stop();
    removeTempStores();
  });

  /** A training loop: `steps` steps of 5 metrics, with `during(step)` hooks. */
  async function train(run: TestRun, tracker: MlflowTracker, steps: number, during: (step: number) => Promise<void> = async () => undefined) {
    run.append({ type: 'params', params: { lr: '0.01', steps: String(steps) } });
    tracker.onAppend();
    for (let s = 0; s < steps; s++) {
      await during(s);
      run.append({ type: 'metrics', step: s, values: { loss: 1 / (s + 1), acc: s / steps, a: s, b: -s - 1, c: s * s } });
      tracker.onAppend();
      if (s % 10 === 9) await sleep(5);
    }
    run.append({ type: 'status', status: 'FINISHED' });
    tracker.onAppend();
  }

  it('server killed mid-run and restarted: every metric arrives exactly once', async () => {
    const run = new TestRun(tempStore(), 'faults', 'run-kill');
    const logs: string[] = [];
    const tracker = new MlflowTracker({ client, dir: run.dir, batchWindowMs: 5, retryBaseMs: 50, retryMaxMs: 300, log: (m) => logs.push(m) });
    let ackedAtKill = -1;
    await train(run, tracker, 200, async (s) => {
      if (s === 30) await tracker.flush({ timeoutMs: 30_000 }); // the run exists and ships
      if (s === 60) {
        ackedAtKill = readState(run.dir).targets[server.uri]?.ackedSeq ?? -1;
        await server.kill();
      }
      if (s === 140) await server.restart();
    });
    await tracker.close({ timeoutMs: 60_000 });
    assert.ok(ackedAtKill >= 30, 'events were shipped before the kill');
    assert.ok(logs.some((l) => /network error|HTTP 5\d\d/u.test(l)), `the outage was noticed: ${logs.join(' | ')}`);
    assert.equal(readState(run.dir).targets[server.uri].ackedSeq, run.events.length - 1);
    await assertMirrors(client, run, readState(run.dir).targets[server.uri].runId);
  });

  it('server answering 500 and 429 for a while: retried, nothing lost', async () => {
    const proxy = await startFaultProxy(server.uri);
    try {
      const pclient = new MlflowClient({ uri: proxy.uri, retry: FAST_RETRY });
      const run = new TestRun(tempStore(), 'faults', 'run-500-429');
      const tracker = new MlflowTracker({ client: pclient, dir: run.dir, batchWindowMs: 5, retryBaseMs: 30, retryMaxMs: 200, log: () => undefined });
      await train(run, tracker, 150, async (s) => {
        if (s === 20) proxy.failNext(7, 500);
        if (s === 80) {
          await tracker.flush({ timeoutMs: 20_000 }); // lets the 500s be used up first
          proxy.failNext(7, 429, '0');
        }
      });
      await tracker.close({ timeoutMs: 60_000 });
      assert.equal(proxy.seen.filter((r) => r.status === 500).length, 7, 'the 500s were served');
      assert.equal(proxy.seen.filter((r) => r.status === 429).length, 7, 'the 429s were served');
      await assertMirrors(client, run, readState(run.dir).targets[proxy.uri].runId);
    } finally {
      await proxy.close();
    }
  });

  it('server down for the whole run: the run finishes locally, a later sync uploads all of it', async () => {
    const deadUri = `http://127.0.0.1:${await freePort()}`;
    const root = tempStore();
    const run = new TestRun(root, 'faults', 'run-offline', { config: 'seed: 3\n' });
    const dead = new MlflowClient({ uri: deadUri, retry: FAST_RETRY });
    const tracker = new MlflowTracker({ client: dead, dir: run.dir, batchWindowMs: 5, retryBaseMs: 20, retryMaxMs: 100, log: () => undefined });
    run.artifact('tables/t.csv', Buffer.from('a,b\n1,2\n'));
    const t0 = Date.now();
    await train(run, tracker, 100);
    await tracker.close({ timeoutMs: 300 });
    assert.ok(Date.now() - t0 < 15_000, 'an unreachable server does not hold the run up');
    assert.equal(readState(run.dir).targets[deadUri], undefined, 'nothing acknowledged by a dead server');
    const res = await syncRuns({ runsRoot: root, runs: [], uri: server.uri, env: {}, client: { retry: FAST_RETRY } }, root);
    assert.equal(res[0].outcome, 'uploaded');
    assert.equal(res[0].events, run.events.length);
    await assertMirrors(client, run, res[0].mlflowRunId!);
  });

  /**
   * A run whose remote run exists, then a network outage (TCP resets) long enough that the
   * tracker's backoff schedules its next try beyond the close deadline. Returns the tracker
   * and the run just before the run would end.
   */
  async function outageLongerThanBackoff(proxy: TcpProxy, id: string, closeTimeoutMs: number, logs: string[]) {
    const pclient = new MlflowClient({ uri: proxy.uri, retry: FAST_RETRY });
    const run = new TestRun(tempStore(), 'faults', id);
    const tracker = new MlflowTracker({ client: pclient, dir: run.dir, batchWindowMs: 5, retryBaseMs: 800, retryMaxMs: 60_000, log: (m) => logs.push(m) });
    run.append({ type: 'params', params: { lr: '0.01' } });
    tracker.onAppend();
    await tracker.flush({ timeoutMs: 30_000 });
    assert.equal(readState(run.dir).targets[proxy.uri]?.ackedSeq, 1, 'shipping worked before the outage');
    proxy.down();
    // ~6.5 s of training during the outage: failures at about 0, 0.8, 2.4, 5.6 s; the next try is due at ~12 s
    const t0 = Date.now();
    for (let s = 0; Date.now() - t0 < 6500; s++) {
      run.append({ type: 'metrics', step: s, values: { loss: 1 / (s + 1), acc: s / 100 } });
      tracker.onAppend();
      await sleep(50);
    }
    const dueIn = tracker.nextAttemptAt - Date.now();
    assert.ok(dueIn > closeTimeoutMs, `precondition: the backoff puts the next try ${dueIn} ms away, past the ${closeTimeoutMs} ms close deadline`);
    return { run, tracker };
  }

  it('network back just before the run ends, after an outage longer than the backoff: close() still uploads the rest', async () => {
    const proxy = await startTcpProxy(server.uri);
    try {
      const logs: string[] = [];
      const closeTimeoutMs = 3000;
      const { run, tracker } = await outageLongerThanBackoff(proxy, 'run-back-at-end', closeTimeoutMs, logs);
      assert.ok(logs.some((l) => /network error/u.test(l)), `the outage was noticed: ${logs.join(' | ')}`);
      proxy.up();
      run.append({ type: 'status', status: 'FINISHED' });
      tracker.onAppend();
      const forwarded = proxy.forwarded;
      await tracker.close({ timeoutMs: closeTimeoutMs });
      assert.ok(proxy.forwarded > forwarded, 'close() made its last attempt despite the backoff');
      assert.equal(readState(run.dir).targets[proxy.uri].ackedSeq, run.events.length - 1, `everything acknowledged: ${logs.join(' | ')}`);
      assert.ok(!logs.some((l) => /unreachable|incomplete/u.test(l)), `no end-of-run warning for a complete upload: ${logs.join(' | ')}`);
      await assertMirrors(client, run, readState(run.dir).targets[proxy.uri].runId);
    } finally {
      await proxy.close();
    }
  });

  it('network still down when the run ends: one last attempt, then "server unreachable now" with the pending count', async () => {
    const proxy = await startTcpProxy(server.uri);
    try {
      const logs: string[] = [];
      const closeTimeoutMs = 3000;
      const { run, tracker } = await outageLongerThanBackoff(proxy, 'run-down-at-end', closeTimeoutMs, logs);
      run.append({ type: 'status', status: 'FINISHED' });
      tracker.onAppend();
      const accepted = proxy.accepted;
      const t0 = Date.now();
      await tracker.close({ timeoutMs: closeTimeoutMs });
      assert.ok(Date.now() - t0 < closeTimeoutMs + 1000, 'the last attempt is bounded by the close deadline');
      assert.ok(proxy.accepted > accepted, 'close() tried the server once more');
      const pending = run.events.length - 1 - readState(run.dir).targets[proxy.uri].ackedSeq;
      assert.ok(pending > 100, `events were left (${pending})`);
      const end = logs.filter((l) => /unreachable now|upload incomplete/u.test(l));
      assert.equal(end.length, 1, logs.join(' | '));
      assert.match(end[0], new RegExp(`^server unreachable now \\(.*network error.*\\): ${pending} journal events not uploaded;.*\`rass runs sync\``, 'u'));
    } finally {
      await proxy.close();
    }
  });

  it('server answering slowly when the run ends: "upload incomplete" with the pending count, and sync finishes it', async () => {
    const proxy = await startFaultProxy(server.uri);
    try {
      const logs: string[] = [];
      const root = tempStore();
      const run = new TestRun(root, 'faults', 'run-slow-at-end');
      const pclient = new MlflowClient({ uri: proxy.uri, retry: FAST_RETRY });
      const tracker = new MlflowTracker({ client: pclient, dir: run.dir, batchWindowMs: 5, retryBaseMs: 50, retryMaxMs: 500, log: (m) => logs.push(m) });
      run.append({ type: 'params', params: { lr: '0.01' } });
      tracker.onAppend();
      await tracker.flush({ timeoutMs: 30_000 });
      // every artifact is its own request; at 300 ms each, 12 do not fit in a 1.5 s close
      proxy.delay(300);
      for (let i = 0; i < 12; i++) run.artifact(`a/${i}.txt`, Buffer.from(`artifact ${i}\n`));
      run.append({ type: 'status', status: 'FINISHED' });
      await tracker.close({ timeoutMs: 1500 });
      const acked = readState(run.dir).targets[proxy.uri].ackedSeq;
      const pending = run.events.length - 1 - acked;
      assert.ok(acked > 1 && pending > 0, `part of the tail went through (acked ${acked}, pending ${pending})`);
      const end = logs.filter((l) => /unreachable now|upload incomplete/u.test(l));
      assert.equal(end.length, 1, logs.join(' | '));
      assert.match(end[0], new RegExp(`^upload incomplete: ${pending} journal events? still pending .*run \`rass runs sync\``, 'u'));
      proxy.delay(0);
      const res = await syncRuns({ runsRoot: root, runs: [], uri: proxy.uri, env: {}, client: { retry: FAST_RETRY } }, root);
      assert.equal(res[0].events, pending, 'sync uploads exactly what was reported pending');
      await assertMirrors(client, run, readState(run.dir).targets[proxy.uri].runId);
    } finally {
      await proxy.close();
    }
  });

  it('tokens and passwords never appear in run files or logs', async () => {
    const proxy = await startFaultProxy(server.uri);
    try {
      const TOKEN = 'tok-S3CRET-7f3a9c2e';
      const PASSWORD = 'pw-S3CRET-b81d44';
      const basicB64 = Buffer.from(`alice:${PASSWORD}`).toString('base64');
      const root = tempStore();
      const logs: string[] = [];
      for (const [id, env] of [
        ['run-bearer', { MLFLOW_TRACKING_TOKEN: TOKEN }],
        ['run-basic', { MLFLOW_TRACKING_USERNAME: 'alice', MLFLOW_TRACKING_PASSWORD: PASSWORD }],
      ] as const) {
        const run = new TestRun(root, 'secrets', id, { config: 'seed: 1\n' });
        const c = new MlflowClient({ ...clientOptionsFromEnv(proxy.uri, env), retry: FAST_RETRY, onRetry: (m) => logs.push(m) });
        const tracker = new MlflowTracker({ client: c, dir: run.dir, env, batchWindowMs: 5, retryBaseMs: 20, retryMaxMs: 100, log: (m) => logs.push(m), warn: (m) => logs.push(m) });
        // Failures whose bodies echo the Authorization header back: the messages must be redacted.
        proxy.failNext(4, 500);
        await train(run, tracker, 30);
        await tracker.close({ timeoutMs: 30_000 });
        await assertMirrors(client, run, readState(run.dir).targets[proxy.uri].runId);
      }
      assert.ok(proxy.seen.some((r) => r.auth === `Bearer ${TOKEN}`), 'the token was sent');
      assert.ok(proxy.seen.some((r) => r.auth === `Basic ${basicB64}`), 'basic auth was sent');
      assert.ok(logs.some((l) => l.includes('injected failure')), 'the failures were logged');
      for (const l of logs) {
        for (const s of [TOKEN, PASSWORD, basicB64]) assert.ok(!l.includes(s), `log line leaks a secret: ${l}`);
      }
      // A sync that really fails (a destination none of these runs was shipped to, answering
      // 500 with the Authorization header echoed in the body) reports redacted messages.
      const refusing = await startFaultProxy(server.uri);
      try {
        refusing.failNext(1_000_000, 500);
        const withCreds = refusing.uri.replace('//', `//alice:${PASSWORD}@`);
        for (const [uri, env] of [
          [refusing.uri, { MLFLOW_TRACKING_TOKEN: TOKEN }],
          [withCreds, {}],
          [refusing.uri, { MLFLOW_TRACKING_USERNAME: 'alice', MLFLOW_TRACKING_PASSWORD: PASSWORD }],
        ] as const) {
          const seenBefore = refusing.seen.length;
          const failed = await syncRuns({ runsRoot: root, runs: [], uri, env, client: { retry: FAST_RETRY } }, root);
          assert.ok(refusing.seen.length > seenBefore, 'the sync sent requests');
          assert.equal(failed.length, 2);
          for (const r of failed) {
            assert.equal(r.outcome, 'failed', `${r.runId}: ${r.outcome}`);
            // the server's answer (which quotes the credential) is in the message, redacted
            assert.match(r.message ?? '', /HTTP 500 INTERNAL_ERROR: injected failure \(auth was (Bearer|Basic) \S+\)/u);
            for (const secret of [TOKEN, PASSWORD, basicB64]) assert.ok(!(r.message ?? '').includes(secret), `sync message leaks a secret: ${r.message}`);
          }
        }
        assert.ok(refusing.seen.some((r) => r.auth === `Bearer ${TOKEN}`) && refusing.seen.some((r) => r.auth === `Basic ${basicB64}`), 'both credential kinds reached the failing server');
      } finally {
        await refusing.close();
      }
      for (const f of allFiles(root)) {
        const text = readFileSync(f).toString('latin1');
        for (const s of [TOKEN, PASSWORD, basicB64]) assert.ok(!text.includes(s), `${f} contains a secret`);
      }
    } finally {
      await proxy.close();
    }
  });
});
