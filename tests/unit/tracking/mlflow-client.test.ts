/**
 * The MLflow client and shipper without a server: retries/backoff/Retry-After, auth headers,
 * redaction, MLflow's batch limits, key/value checks and the journal tail.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { MlflowClient, MlflowHttpError, parseRetryAfter } from '../../../framework/tracking/mlflow/client.js';
import { JournalTail } from '../../../framework/tracking/mlflow/journal-tail.js';
import { MLFLOW_LIMITS, keyProblem, truncateValue } from '../../../framework/tracking/mlflow/limits.js';
import { Redactor, stripCredentials } from '../../../framework/tracking/mlflow/redact.js';
import { RunShipper } from '../../../framework/tracking/mlflow/shipper.js';
import { readState } from '../../../framework/tracking/mlflow/state.js';
import { MlflowTracker } from '../../../framework/tracking/mlflow/tracker.js';

interface Call {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  at: number;
}

/** A fetch that answers from a script of responses and records every call. */
function fakeFetch(answer: (call: Call, n: number) => { status: number; body?: unknown; headers?: Record<string, string> } | Error) {
  const calls: Call[] = [];
  const f = (async (url: string | URL, init?: RequestInit) => {
    const u = new URL(String(url));
    const call: Call = { method: init?.method ?? 'GET', path: u.pathname + u.search, headers: { ...(init?.headers as Record<string, string>) }, body: typeof init?.body === 'string' ? init.body : undefined, at: Date.now() };
    calls.push(call);
    const a = answer(call, calls.length);
    if (a instanceof Error) throw a;
    return new Response(a.body === undefined ? '{}' : JSON.stringify(a.body), { status: a.status, headers: a.headers });
  }) as typeof fetch;
  return { fetch: f, calls };
}

describe('MlflowClient transport', () => {
  it('retries network errors, 5xx, 408 and 429 with backoff, then succeeds', async () => {
    const script = [new TypeError('fetch failed'), 503, 408, 429, 200];
    const { fetch, calls } = fakeFetch((_c, n) => {
      const s = script[n - 1];
      return s instanceof Error ? s : { status: s as number, body: { experiment_id: '7' } };
    });
    const retries: string[] = [];
    const c = new MlflowClient({ uri: 'http://127.0.0.1:1', fetch, retry: { maxAttempts: 6, baseDelayMs: 5, maxDelayMs: 40 }, onRetry: (m) => retries.push(m) });
    assert.equal(await c.createExperiment('e'), '7');
    assert.equal(calls.length, 5);
    assert.equal(retries.length, 4);
    // exponential: gaps grow (5, 10, 20, 40 ms nominal)
    const gaps = calls.slice(1).map((x, i) => x.at - calls[i].at);
    assert.ok(gaps[3] >= 35, `backoff grows: ${gaps.join(',')}`);
  });

  it('does not retry a 400 and reports MLflow\'s error code', async () => {
    const { fetch, calls } = fakeFetch(() => ({ status: 400, body: { error_code: 'INVALID_PARAMETER_VALUE', message: 'bad' } }));
    const c = new MlflowClient({ uri: 'http://127.0.0.1:1', fetch, retry: { baseDelayMs: 1 } });
    await assert.rejects(c.createExperiment('e'), (e: unknown) => e instanceof MlflowHttpError && e.status === 400 && e.errorCode === 'INVALID_PARAMETER_VALUE' && !e.retryable);
    assert.equal(calls.length, 1);
  });

  it('gives up after maxAttempts with a retryable error', async () => {
    const { fetch, calls } = fakeFetch(() => ({ status: 502 }));
    const c = new MlflowClient({ uri: 'http://127.0.0.1:1', fetch, retry: { maxAttempts: 3, baseDelayMs: 1 } });
    await assert.rejects(c.getRun('r'), (e: unknown) => e instanceof MlflowHttpError && e.retryable && e.status === 502);
    assert.equal(calls.length, 3);
  });

  it('honours Retry-After (seconds and HTTP date)', async () => {
    assert.equal(parseRetryAfter('2'), 2000);
    assert.equal(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 3)).toUTCString(), Date.UTC(2030, 0, 1)), 3000);
    assert.equal(parseRetryAfter(null), undefined);
    const { fetch, calls } = fakeFetch((_c, n) => (n === 1 ? { status: 429, headers: { 'retry-after': '0.15' } } : { status: 200, body: {} }));
    const c = new MlflowClient({ uri: 'http://127.0.0.1:1', fetch, retry: { baseDelayMs: 1, maxDelayMs: 1000 } });
    await c.updateRun({ runId: 'r', status: 'FINISHED' });
    assert.ok(calls[1].at - calls[0].at >= 140, `waited ${calls[1].at - calls[0].at} ms`);
  });

  it('sends Bearer for a token, Basic for user/password (also from the URI), and never shows them', async () => {
    const { fetch, calls } = fakeFetch(() => ({ status: 500, body: { message: 'echo' } }));
    const tok = new MlflowClient({ uri: 'http://127.0.0.1:1', token: 'sekret-token', fetch, retry: { maxAttempts: 1 } });
    await tok.getRun('x').catch(() => undefined);
    assert.equal(calls[0].headers.Authorization, 'Bearer sekret-token');
    const basic = new MlflowClient({ uri: 'http://bob:pa%24%24word@127.0.0.1:1/prefix/', fetch, retry: { maxAttempts: 1 } });
    assert.equal(basic.uri, 'http://127.0.0.1:1/prefix');
    await basic.getRun('x').catch(() => undefined);
    assert.equal(calls[1].headers.Authorization, `Basic ${Buffer.from('bob:pa$$word').toString('base64')}`);
    assert.ok(calls[1].path.startsWith('/prefix/api/2.0/mlflow/runs/get'));
  });

  it('redacts secrets, Authorization headers and URI credentials', () => {
    const r = new Redactor(['p@ss-w0rd', undefined]);
    assert.equal(r.redact('login p@ss-w0rd failed'), 'login [REDACTED] failed');
    assert.equal(r.redact('uri http://u:p%40ss-w0rd@h/x'), 'uri http://[REDACTED]@h/x');
    assert.equal(r.redact('Authorization: Bearer abc.def'), 'Authorization: Bearer [REDACTED]');
    assert.equal(r.redact('{"authorization":"Basic Ym9iOnB3"}'), '{"authorization":"Basic [REDACTED]"}');
    assert.equal(stripCredentials('https://a:b@example.org:5000/'), 'https://example.org:5000');
  });
});

describe('MLflow limits', () => {
  it('checks keys like MLflow does', () => {
    assert.equal(keyProblem('val/miou'), undefined);
    assert.equal(keyProblem('a b:c-d.e_f'), undefined);
    assert.match(keyProblem('')!, /empty/);
    assert.match(keyProblem('x'.repeat(251))!, /251 characters/);
    assert.match(keyProblem('loss%')!, /characters MLflow does not allow/);
    for (const k of ['/a', 'a/', 'a//b', 'a/../b', './a']) assert.ok(keyProblem(k), k);
  });

  it('truncates long values to the limit with a visible mark', () => {
    const r = truncateValue('y'.repeat(7000), MLFLOW_LIMITS.paramValueLength);
    assert.equal(r.truncated, true);
    assert.equal(r.value.length, 6000);
    assert.ok(r.value.endsWith('...[truncated]'));
    assert.deepEqual(truncateValue('short', 10), { value: 'short', truncated: false });
  });
});

describe('JournalTail', () => {
  it('returns complete lines only and resumes where it stopped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rass-tail-'));
    const f = join(dir, 'journal.jsonl');
    const tail = new JournalTail(f);
    assert.deepEqual(tail.readNew(), []);
    appendFileSync(f, JSON.stringify({ seq: 0, t: 1, type: 'tags', tags: {} }) + '\n{"seq":1,"t":2,"ty');
    assert.deepEqual(tail.readNew().map((e) => e.seq), [0]);
    assert.deepEqual(tail.readNew(), []);
    appendFileSync(f, 'pe":"tags","tags":{}}\n');
    assert.deepEqual(tail.readNew().map((e) => e.seq), [1]);
    appendFileSync(f, JSON.stringify({ seq: 3, t: 3, type: 'tags', tags: {} }) + '\n');
    assert.throws(() => tail.readNew(), /seq 3 where 2 was expected/);
  });
});

describe('RunShipper batching', () => {
  it('splits into log-batch calls within MLflow limits, in journal order, acknowledging as it goes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rass-ship-'));
    mkdirSync(dir, { recursive: true });
    const lines: object[] = [{ seq: 0, t: 100, type: 'run', runId: 'r1', experiment: 'e', name: 'n' }];
    lines.push({ seq: 1, t: 101, type: 'params', params: Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`p${i}`, String(i)])) });
    for (let s = 0; s < 30; s++) lines.push({ seq: 2 + s, t: 200 + s, type: 'metrics', step: s, values: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`m${i}`, s * 1000 + i])) });
    lines.push({ seq: 32, t: 400, type: 'tags', tags: { big: 'z'.repeat(9000), 'bad key!': 'v' } });
    // values long enough that the 1 MB request limit binds before the count limit
    lines.push({ seq: 33, t: 401, type: 'params', params: Object.fromEntries(Array.from({ length: 99 }, (_, i) => [`long${i}`, 'q'.repeat(5999)])) });
    lines.push({ seq: 34, t: 402, type: 'params', params: Object.fromEntries(Array.from({ length: 99 }, (_, i) => [`long2_${i}`, 'w'.repeat(5999)])) });
    lines.push({ seq: 35, t: 500, type: 'status', status: 'FINISHED' });
    writeFileSync(join(dir, 'journal.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const { fetch, calls } = fakeFetch((c) => {
      if (c.path.includes('get-by-name')) return { status: 404, body: { error_code: 'RESOURCE_DOES_NOT_EXIST' } };
      if (c.path.includes('experiments/create')) return { status: 200, body: { experiment_id: '1' } };
      if (c.path.includes('runs/search')) return { status: 200, body: {} };
      if (c.path.includes('runs/create')) return { status: 200, body: { run: { info: { run_id: 'abc', experiment_id: '1', status: 'RUNNING', artifact_uri: 'mlflow-artifacts:/1/abc/artifacts', lifecycle_stage: 'active' }, data: {} } } };
      return { status: 200, body: {} };
    });
    const warnings: string[] = [];
    const shipper = new RunShipper({ client: new MlflowClient({ uri: 'http://127.0.0.1:1', fetch }), dir, warn: (m) => warnings.push(m) });
    const p = await shipper.ship();
    assert.equal(p.ackedSeq, 35);
    assert.equal(readState(dir).targets['http://127.0.0.1:1'].ackedSeq, 35);
    const batches = calls.filter((c) => c.path.endsWith('log-batch')).map((c) => ({ size: c.body!.length, ...(JSON.parse(c.body!) as { metrics: Array<{ key: string; step: number; timestamp: number; value: number }>; params: unknown[]; tags: Array<{ key: string; value: string }> }) }));
    for (const b of batches) {
      assert.ok(b.metrics.length <= 1000 && b.params.length <= 100 && b.tags.length <= 100, 'count limits');
      assert.ok(b.metrics.length + b.params.length + b.tags.length <= 1000, 'entity limit');
      assert.ok(b.size <= MLFLOW_LIMITS.requestBytes, `request size ${b.size}`);
    }
    const metrics = batches.flatMap((b) => b.metrics);
    assert.equal(metrics.length, 3000);
    assert.deepEqual(metrics.map((m) => m.step), [...metrics.map((m) => m.step)].sort((a, b) => a - b), 'journal order');
    assert.equal(metrics[150].timestamp, 201);
    assert.equal(metrics[150].value, 1050);
    assert.equal(batches.flatMap((b) => b.params).length, 250 + 198);
    const tags = batches.flatMap((b) => b.tags);
    assert.equal(tags.length, 1, 'the bad key is dropped');
    assert.equal(tags[0].value.length, MLFLOW_LIMITS.tagValueLength);
    assert.ok(warnings.some((w) => w.includes('bad key!')));
    assert.ok(batches.some((b) => b.size > 500_000), 'the long params fill a batch by size');
    const last = calls[calls.length - 1];
    assert.ok(last.path.endsWith('runs/update'));
    assert.deepEqual(JSON.parse(last.body!), { run_id: 'abc', status: 'FINISHED', end_time: 500 });
    // Nothing new: a second ship sends nothing.
    const before = calls.length;
    await shipper.ship();
    assert.equal(calls.length, before);
  });
});

describe('parent runs', () => {
  const answer = (c: Call) => {
    if (c.path.includes('get-by-name')) return { status: 200, body: { experiment: { experiment_id: '3', name: 'e', lifecycle_stage: 'active' } } };
    if (c.path.includes('runs/search')) return { status: 200, body: {} };
    if (c.path.includes('runs/create')) {
      const id = `id-${JSON.parse(c.body!).run_name as string}`;
      return { status: 200, body: { run: { info: { run_id: id, experiment_id: '3', status: 'RUNNING', artifact_uri: `mlflow-artifacts:/3/${id}/artifacts`, lifecycle_stage: 'active' }, data: {} } } };
    }
    return { status: 200, body: {} };
  };
  const writeRun = (dir: string, ev: object) => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'journal.jsonl'), JSON.stringify({ seq: 0, t: 5, type: 'run', experiment: 'e', ...ev }) + '\n');
  };

  it('finds the parent in the store (sibling or nested layout) and creates it first', async () => {
    for (const layout of ['sibling', 'nested'] as const) {
      const root = mkdtempSync(join(tmpdir(), 'rass-parent-'));
      const pdir = join(root, 'e', 'sweep');
      const cdir = layout === 'sibling' ? join(root, 'e', 'trial') : join(pdir, 'trials', 'trial');
      writeRun(pdir, { runId: 'sweep', name: 'sweep' });
      writeRun(cdir, { runId: 'trial', name: 'trial', parentRunId: 'sweep' });
      const { fetch, calls } = fakeFetch(answer);
      await new RunShipper({ client: new MlflowClient({ uri: 'http://127.0.0.1:1', fetch }), dir: cdir }).ship();
      const creates = calls.filter((c) => c.path.endsWith('runs/create')).map((c) => JSON.parse(c.body!) as { run_name: string; tags: Array<{ key: string; value: string }> });
      assert.deepEqual(creates.map((c) => c.run_name), ['sweep', 'trial'], layout);
      assert.equal(creates[1].tags.find((t) => t.key === 'mlflow.parentRunId')?.value, 'id-sweep');
      assert.equal(readState(pdir).targets['http://127.0.0.1:1'].runId, 'id-sweep');
    }
  });

  it('a trial whose parent is not in the store is still tracked, with a warning', async () => {
    const root = mkdtempSync(join(tmpdir(), 'rass-orphan-'));
    const cdir = join(root, 'e', 'lonely');
    writeRun(cdir, { runId: 'lonely', name: 'lonely', parentRunId: 'gone' });
    const { fetch, calls } = fakeFetch(answer);
    const warnings: string[] = [];
    await new RunShipper({ client: new MlflowClient({ uri: 'http://127.0.0.1:1', fetch }), dir: cdir, warn: (m) => warnings.push(m) }).ship();
    const create = JSON.parse(calls.find((c) => c.path.endsWith('runs/create'))!.body!) as { tags: Array<{ key: string }> };
    assert.ok(!create.tags.some((t) => t.key === 'mlflow.parentRunId'));
    assert.ok(warnings.some((w) => w.includes('parent run gone')));
  });
});

describe('MlflowTracker deadlines', () => {
  it('close() returns within its timeout when the server accepts connections but never answers', async () => {
    const sockets: Socket[] = [];
    const hang = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', () => r()));
    const port = (hang.address() as { port: number }).port;
    try {
      const dir = mkdtempSync(join(tmpdir(), 'rass-hang-'));
      writeFileSync(join(dir, 'journal.jsonl'), JSON.stringify({ seq: 0, t: 1, type: 'run', runId: 'h', experiment: 'e', name: 'h' }) + '\n');
      const tracker = new MlflowTracker({ client: new MlflowClient({ uri: `http://127.0.0.1:${port}` }), dir, batchWindowMs: 1, log: () => undefined });
      tracker.onAppend();
      const t0 = Date.now();
      await tracker.close({ timeoutMs: 400 });
      const took = Date.now() - t0;
      assert.ok(took < 1500, `close took ${took} ms`);
      assert.ok(sockets.length >= 1, 'the tracker did try the server');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => hang.close(r));
    }
  });
});

describe('artifact paths', () => {
  it('a journaled artifact path that leaves the run directory is not uploaded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rass-art-'));
    const lines = [
      { seq: 0, t: 1, type: 'run', runId: 'a', experiment: 'e', name: 'a' },
      { seq: 1, t: 2, type: 'artifact', path: '../../secret.txt', size: 1, sha256: 'x' },
    ];
    writeFileSync(join(dir, 'journal.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const { fetch, calls } = fakeFetch((c) => {
      if (c.path.includes('get-by-name')) return { status: 200, body: { experiment: { experiment_id: '1', name: 'e', lifecycle_stage: 'active' } } };
      if (c.path.includes('runs/create')) return { status: 200, body: { run: { info: { run_id: 'r', experiment_id: '1', status: 'RUNNING', artifact_uri: 'mlflow-artifacts:/1/r/artifacts', lifecycle_stage: 'active' }, data: {} } } };
      return { status: 200, body: {} };
    });
    const warnings: string[] = [];
    const p = await new RunShipper({ client: new MlflowClient({ uri: 'http://127.0.0.1:1', fetch }), dir, warn: (m) => warnings.push(m) }).ship();
    assert.equal(p.ackedSeq, 1);
    assert.ok(!calls.some((c) => c.method === 'PUT'), 'no upload');
    assert.ok(warnings.some((w) => w.includes('not a clean relative path')));
  });
});
