/**
 * Test helpers for the MLflow tests: a minimal journal writer that follows
 * framework/tracking/events.ts (the tracker only reads journals, so tests write their own),
 * deterministic bytes, and a fault-injecting HTTP proxy in front of the real server.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { JournalEvent, NewJournalEvent } from '../../../framework/tracking/events.js';

const stores: string[] = [];

/** A fresh local run store in the temp dir (removed by removeTempStores). */
export function tempStore(prefix = 'rass-mlflow-runs-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  stores.push(d);
  return d;
}

export function removeTempStores(): void {
  for (const d of stores.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Writes <root>/<experiment>/<runId>/journal.jsonl the way the run store does. */
export class TestRun {
  readonly dir: string;
  readonly events: JournalEvent[] = [];
  private seq = 0;
  /** wall clock used for `t` (tests advance it so timestamps are distinct and known) */
  clock: number;

  constructor(root: string, readonly experiment: string, readonly runId: string, opts: { parentRunId?: string; name?: string; config?: string; t0?: number } = {}) {
    this.dir = join(root, experiment, runId);
    mkdirSync(join(this.dir, 'artifacts'), { recursive: true });
    this.clock = opts.t0 ?? 1_700_000_000_000;
    if (opts.config !== undefined) writeFileSync(join(this.dir, 'config.yaml'), opts.config);
    this.append({ type: 'run', runId, experiment, name: opts.name ?? runId, parentRunId: opts.parentRunId, configHash: 'cafe' });
  }

  append(ev: NewJournalEvent): JournalEvent {
    const full = { ...ev, seq: this.seq++, t: ev.t ?? this.clock++ } as JournalEvent;
    appendFileSync(join(this.dir, 'journal.jsonl'), JSON.stringify(full) + '\n');
    this.events.push(full);
    return full;
  }

  /** Write the first half of an event's line now (a write in progress); call the result to finish it. */
  appendTorn(ev: NewJournalEvent): () => JournalEvent {
    const full = { ...ev, seq: this.seq++, t: ev.t ?? this.clock++ } as JournalEvent;
    const line = JSON.stringify(full) + '\n';
    const cut = Math.floor(line.length / 2);
    appendFileSync(join(this.dir, 'journal.jsonl'), line.slice(0, cut));
    return () => {
      appendFileSync(join(this.dir, 'journal.jsonl'), line.slice(cut));
      this.events.push(full);
      return full;
    };
  }

  artifact(path: string, data: Uint8Array): JournalEvent {
    const file = join(this.dir, 'artifacts', ...path.split('/'));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, data);
    return this.append({ type: 'artifact', path, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
  }

  /** Metric points as the journal holds them: key -> [{step, timestamp, value}]. */
  metricPoints(): Map<string, Array<{ step: number; timestamp: number; value: number }>> {
    const m = new Map<string, Array<{ step: number; timestamp: number; value: number }>>();
    for (const e of this.events) {
      if (e.type !== 'metrics') continue;
      for (const [k, v] of Object.entries(e.values)) {
        if (!m.has(k)) m.set(k, []);
        m.get(k)!.push({ step: e.step, timestamp: e.t, value: v });
      }
    }
    return m;
  }
}

/** Deterministic pseudo-random bytes (sha256 in counter mode), for binary artifacts. */
export function detBytes(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0, off = 0; off < n; i++) {
    const h = createHash('sha256').update(`${seed}:${i}`).digest();
    h.copy(out, off, 0, Math.min(h.length, n - off));
    off += h.length;
  }
  return out;
}

export interface FaultProxy {
  readonly uri: string;
  /** answer the next `n` requests with `status` (429 carries Retry-After: retryAfter) */
  failNext(n: number, status: number, retryAfter?: string): void;
  /** hold every forwarded request this long before passing it on (a slow server); 0: off */
  delay(ms: number): void;
  /** every request seen: method, path, Authorization header, the status returned */
  readonly seen: Array<{ method: string; path: string; auth?: string; status: number }>;
  close(): Promise<void>;
}

/** An in-process HTTP proxy to `target` that fails requests on demand. */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const t = new URL(target);
  let failing: { n: number; status: number; retryAfter?: string } = { n: 0, status: 500 };
  const seen: FaultProxy['seen'] = [];
  let delayMs = 0;
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry = { method: req.method ?? '', path: req.url ?? '', auth: req.headers.authorization, status: 0 };
      seen.push(entry);
      if (failing.n > 0) {
        failing.n--;
        entry.status = failing.status;
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (failing.retryAfter !== undefined) headers['retry-after'] = failing.retryAfter;
        // Echo the Authorization header back in the body: the client must redact it from its errors.
        res.writeHead(failing.status, headers).end(JSON.stringify({ error_code: 'INTERNAL_ERROR', message: `injected failure (auth was ${req.headers.authorization ?? 'none'})` }));
        return;
      }
      const body = Buffer.concat(chunks);
      const forward = () => {
        const up = request(
          { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host, 'content-length': String(body.length) } },
          (ur) => {
            entry.status = ur.statusCode ?? 0;
            res.writeHead(ur.statusCode ?? 502, ur.headers);
            ur.pipe(res);
          },
        );
        up.on('error', () => {
          entry.status = 502;
          if (!res.headersSent) res.writeHead(502).end('upstream down');
          else res.destroy();
        });
        up.end(body);
      };
      if (delayMs > 0) setTimeout(forward, delayMs);
      else forward();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    uri: `http://127.0.0.1:${port}`,
    seen,
    failNext(n, status, retryAfter) {
      failing = { n, status, retryAfter };
    },
    delay(ms) {
      delayMs = ms;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface TcpProxy {
  readonly uri: string;
  /** connections accepted so far, and how many of them were forwarded (not dropped) */
  readonly accepted: number;
  readonly forwarded: number;
  /** drop every open connection and reset each new one (a network outage), until up() */
  down(): void;
  up(): void;
  close(): Promise<void>;
}

/**
 * A TCP-level proxy to `target` that can cut the network: while down it resets every
 * connection, the open keep-alive ones included, so the client sees what an outage looks like
 * (connection reset / refused), not an HTTP error a server chose to send.
 */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const t = new URL(target);
  let isDown = false;
  let accepted = 0;
  let forwarded = 0;
  const open = new Set<Socket>();
  const server = createTcpServer((client) => {
    accepted++;
    if (isDown) {
      client.resetAndDestroy();
      return;
    }
    forwarded++;
    const upstream = connect(Number(t.port), t.hostname);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    uri: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get forwarded() {
      return forwarded;
    },
    down() {
      isDown = true;
      for (const s of open) s.resetAndDestroy();
    },
    up() {
      isDown = false;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}
