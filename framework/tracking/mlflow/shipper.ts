/**
 * Ships one run's journal to MLflow, in order, in batches within MLflow's limits, and records
 * what the server acknowledged in mlflow.json after every call. Used by the live tracker (in
 * the training process) and by `rass runs sync` (afterwards); both resume from the state.
 *
 * Resending after a lost acknowledgement is harmless on MLflow's SQL stores: a metric point
 * is keyed by (key, step, timestamp, value), params accept the same value again and tags
 * overwrite. That is what makes "continue from the last acknowledged event" exactly-once.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { JournalEvent } from '../events.js';
import { type KeyValue, type MlflowClient, MlflowHttpError } from './client.js';
import { JournalTail } from './journal-tail.js';
import { MLFLOW_LIMITS, keyProblem, truncateValue } from './limits.js';
import { ensureRemoteRun, type RemoteRunOptions } from './remote-run.js';
import { type MlflowTargetState, targetState, updateTarget } from './state.js';

export interface ShipperOptions extends RemoteRunOptions {
  client: MlflowClient;
  dir: string;
  env?: Record<string, string | undefined>;
  /** also upload <dir>/checkpoints/** when the run has ended */
  logCheckpoints?: boolean;
  /** warnings (bad keys, truncated values, param conflicts); already free of secrets */
  warn?: (message: string) => void;
}

export interface ShipProgress {
  /** events acknowledged by this call */
  events: number;
  requests: number;
  /** journal seq acknowledged so far (-1: none) */
  ackedSeq: number;
  /** seq of the last complete event in the journal (-1: none) */
  journalSeq: number;
}

type MetricEntry = { key: string; value: number | null; timestamp: number; step: number };

/** Accumulates log-batch entries and says when one more would cross a limit. */
class BatchBuilder {
  metrics: MetricEntry[] = [];
  params: KeyValue[] = [];
  tags: KeyValue[] = [];
  bytes = 64;

  get empty(): boolean {
    return this.metrics.length + this.params.length + this.tags.length === 0;
  }

  fits(kind: 'metrics' | 'params' | 'tags', size: number): boolean {
    const n = this.metrics.length + this.params.length + this.tags.length;
    if (n + 1 > MLFLOW_LIMITS.entitiesPerBatch) return false;
    // 10% headroom: the server measures the body it receives, we estimate per entry.
    if (this.bytes + size > MLFLOW_LIMITS.requestBytes * 0.9) return false;
    if (kind === 'metrics') return this.metrics.length < MLFLOW_LIMITS.metricsPerBatch;
    if (kind === 'params') return this.params.length < MLFLOW_LIMITS.paramsPerBatch;
    return this.tags.length < MLFLOW_LIMITS.tagsPerBatch;
  }

  add(kind: 'metrics', e: MetricEntry, size: number): void;
  add(kind: 'params' | 'tags', e: KeyValue, size: number): void;
  add(kind: 'metrics' | 'params' | 'tags', e: MetricEntry | KeyValue, size: number): void {
    (this[kind] as unknown[]).push(e);
    this.bytes += size;
  }
}

const entrySize = (e: unknown) => JSON.stringify(e).length + 1;

function sha256File(p: string): string {
  return createHash('sha256').update(readFileSync(p)).digest('hex');
}

export class RunShipper {
  readonly client: MlflowClient;
  readonly dir: string;
  private readonly tail: JournalTail;
  /** events read but not yet acknowledged, in seq order */
  private queue: JournalEvent[] = [];
  private target: MlflowTargetState | undefined;
  /** params as first journaled, to spot a run changing a param (MLflow params are immutable) */
  private readonly journaledParams = new Map<string, string>();
  private readonly warned = new Set<string>();
  private started = false;
  private ended = false;

  constructor(private readonly opts: ShipperOptions) {
    this.client = opts.client;
    this.dir = opts.dir;
    this.tail = new JournalTail(join(opts.dir, 'journal.jsonl'));
  }

  private warnOnce(key: string, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.opts.warn?.(msg);
  }

  /** The MLflow run id once known. */
  get mlflowRunId(): string | undefined {
    return this.target?.runId;
  }

  get ackedSeq(): number {
    return this.target?.ackedSeq ?? -1;
  }

  private ack(seq: number): void {
    const t = this.target!;
    if (seq <= t.ackedSeq) return;
    t.ackedSeq = seq;
    updateTarget(this.dir, this.client.uri, t);
    // Only acknowledged events leave the queue: a failed call leaves its events for the next try.
    while (this.queue.length > 0 && this.queue[0].seq <= seq) this.queue.shift();
  }

  /** Read newly journaled events; those already acknowledged only feed the param history. */
  private pull(): void {
    for (const ev of this.tail.readNew()) {
      if (ev.type === 'params') {
        for (const [k, v] of Object.entries(ev.params)) if (!this.journaledParams.has(k)) this.journaledParams.set(k, v);
      }
      if (ev.type === 'status' && ev.status !== 'RUNNING') this.ended = true;
      if (this.target && ev.seq <= this.target.ackedSeq) continue;
      this.queue.push(ev);
    }
  }

  /** Are all complete journal events acknowledged (reads what was appended meanwhile)? */
  get caughtUp(): boolean {
    if (!this.started) {
      this.pull();
      return this.tail.nextSeq === 0;
    }
    this.pull();
    return this.queue.length === 0;
  }

  /** Complete journal events not yet acknowledged by the server (reads what was appended meanwhile). */
  get pending(): number {
    this.pull();
    // before the first shipment the state file knows what an earlier process got acknowledged
    const acked = this.target?.ackedSeq ?? targetState(this.dir, this.client.uri)?.ackedSeq ?? -1;
    return Math.max(0, this.tail.nextSeq - 1 - acked);
  }

  /**
   * Ship everything journaled so far. Throws MlflowHttpError when the server is unreachable
   * after the client's retries (nothing is lost: the next call resumes) or refuses a request.
   */
  async ship(): Promise<ShipProgress> {
    let requests = 0;
    if (!this.started) {
      // The run event must be complete before the remote run can be created.
      this.pull();
      if (this.queue.length === 0 && this.tail.nextSeq === 0) return { events: 0, requests: 0, ackedSeq: -1, journalSeq: -1 };
      this.target = await ensureRemoteRun(this.client, this.dir, this.opts);
      this.queue = this.queue.filter((e) => e.seq > this.target!.ackedSeq);
      this.started = true;
    }
    this.pull();
    const before = this.ackedSeq;
    const batch = new BatchBuilder();
    let batchSeq = -1; // last event completely inside `batch`
    const sendBatch = async () => {
      if (batch.empty) return;
      await this.sendLogBatch(batch);
      requests++;
      batch.metrics = [];
      batch.params = [];
      batch.tags = [];
      batch.bytes = 64;
      if (batchSeq >= 0) this.ackUpTo(batchSeq);
    };
    const addEntry = async (kind: 'metrics' | 'params' | 'tags', e: MetricEntry | KeyValue) => {
      const size = entrySize(e);
      if (!batch.fits(kind, size)) await sendBatch();
      batch.add(kind as 'metrics', e as MetricEntry, size);
    };
    // A resumed run re-does the steps after its checkpoint: of the points still to send, a
    // step journaled again later is sent once, with the later attempt's value.
    const lastSeqOf = new Map<string, number>();
    for (const ev of this.queue) if (ev.type === 'metrics') for (const k of Object.keys(ev.values)) lastSeqOf.set(`${ev.step}\u0000${k}`, ev.seq);
    for (const ev of [...this.queue]) {
      switch (ev.type) {
        case 'run':
          break; // created by ensureRemoteRun
        case 'params':
          for (const [k, raw] of Object.entries(ev.params)) {
            if (!this.keyOk('param', k)) continue;
            const first = this.journaledParams.get(k);
            if (first !== undefined && first !== raw) {
              this.recordConflict(k, first, raw, 'the journal logged it twice');
              continue;
            }
            await addEntry('params', { key: k, value: this.cut('param', k, String(raw), MLFLOW_LIMITS.paramValueLength) });
          }
          break;
        case 'metrics':
          for (const [k, v] of Object.entries(ev.values)) {
            if (lastSeqOf.get(`${ev.step}\u0000${k}`) !== ev.seq) continue; // superseded by a later attempt
            if (!this.keyOk('metric', k)) continue;
            await addEntry('metrics', { key: k, value: typeof v === 'number' ? v : null, timestamp: ev.t, step: ev.step });
          }
          break;
        case 'tags':
          for (const [k, v] of Object.entries(ev.tags)) {
            if (!this.keyOk('tag', k)) continue;
            await addEntry('tags', { key: k, value: this.cut('tag', k, String(v), MLFLOW_LIMITS.tagValueLength) });
          }
          break;
        case 'status':
          await sendBatch();
          await this.client.updateRun({ runId: this.target!.runId, status: ev.status, endTime: ev.status === 'RUNNING' ? undefined : ev.t });
          requests++;
          if (ev.message) {
            await this.client.setTag(this.target!.runId, 'rass.status_message', truncateValue(ev.message, MLFLOW_LIMITS.tagValueLength).value);
            requests++;
          }
          break;
        case 'artifact':
          await sendBatch();
          if (ev.path.startsWith('/') || ev.path.split(/[/\\]/u).some((p) => p === '..' || p === '')) {
            this.warnOnce(`path:${ev.path}`, `MLflow: artifact path ${JSON.stringify(ev.path)} is not a clean relative path; not uploaded`);
          } else {
            requests += await this.uploadArtifact(join('artifacts', ...ev.path.split('/')), ev.path, ev.sha256);
          }
          break;
        case 'input':
          await sendBatch();
          await this.client.logInputs(this.target!.runId, [
            {
              dataset: {
                name: truncateValue(ev.name, MLFLOW_LIMITS.datasetNameLength).value,
                digest: ev.digest.slice(0, MLFLOW_LIMITS.datasetDigestLength),
                source_type: /^[a-z][a-z0-9+.-]*:\/\//iu.test(ev.source) ? 'url' : 'local',
                source: truncateValue(ev.source, MLFLOW_LIMITS.datasetSourceLength).value,
              },
              tags: ev.context ? [{ key: 'mlflow.data.context', value: ev.context.slice(0, 500) }] : [],
            },
          ]);
          requests++;
          break;
        default: {
          const unknown = ev as { type: string; seq: number };
          this.warnOnce(`type:${unknown.type}`, `journal event type "${unknown.type}" (seq ${unknown.seq}) is not mirrored to MLflow`);
        }
      }
      if (batch.empty) this.ack(ev.seq);
      else batchSeq = ev.seq;
    }
    await sendBatch();
    if (this.ended && this.queue.length === 0) requests += await this.uploadRunFiles();
    return { events: this.ackedSeq - before, requests, ackedSeq: this.ackedSeq, journalSeq: this.tail.nextSeq - 1 };
  }

  private ackUpTo(seq: number): void {
    this.ack(seq);
  }

  private keyOk(what: string, key: string): boolean {
    const p = keyProblem(key);
    if (!p) return true;
    this.warnOnce(`key:${what}:${key}`, `MLflow: ${what} key "${key.slice(0, 80)}" ${p}; it is kept in the local journal but not sent to MLflow`);
    return false;
  }

  private cut(what: string, key: string, value: string, max: number): string {
    const r = truncateValue(value, max);
    if (r.truncated) this.warnOnce(`cut:${what}:${key}`, `MLflow: ${what} "${key}" is ${value.length} characters; MLflow keeps at most ${max}, so it was truncated (the full value stays in the local journal)`);
    return r.value;
  }

  private recordConflict(key: string, old: string, attempted: string, why: string): void {
    const msg = `MLflow param "${key}" is immutable: it is ${JSON.stringify(old)} but the run tried to log ${JSON.stringify(attempted)} (${why}); MLflow keeps ${JSON.stringify(old)}`;
    const t = this.target!;
    if (t.conflicts?.includes(msg)) return; // the same event re-processed after a failed call
    t.conflicts = [...(t.conflicts ?? []), msg];
    updateTarget(this.dir, this.client.uri, t);
    this.warnOnce(`conflict:${key}:${attempted}`, msg);
  }

  /** log-batch; a param the server already has with another value is reported and dropped. */
  private async sendLogBatch(batch: BatchBuilder): Promise<void> {
    const runId = this.target!.runId;
    try {
      await this.client.logBatch(runId, batch);
    } catch (e) {
      if (!(e instanceof MlflowHttpError) || e.status !== 400 || batch.params.length === 0) throw e;
      const remote = new Map((await this.client.getRun(runId)).data.params?.map((p) => [p.key, p.value]) ?? []);
      const conflicting = batch.params.filter((p) => remote.has(p.key) && remote.get(p.key) !== p.value);
      if (conflicting.length === 0) throw e;
      for (const p of conflicting) this.recordConflict(p.key, remote.get(p.key)!, p.value, 'the server already had it');
      batch.params = batch.params.filter((p) => !conflicting.includes(p));
      await this.client.logBatch(runId, batch);
    }
  }

  /** Upload <dir>/<rel> as artifact `artPath` unless the same bytes were uploaded already. */
  private async uploadArtifact(rel: string, artPath: string, sha?: string): Promise<number> {
    const file = join(this.dir, rel);
    const t = this.target!;
    if (!existsSync(file)) {
      this.warnOnce(`missing:${artPath}`, `MLflow: artifact ${artPath} is journaled but ${file} is missing; not uploaded`);
      return 0;
    }
    const data = readFileSync(file);
    const actual = createHash('sha256').update(data).digest('hex');
    if (sha && actual !== sha) this.warnOnce(`sha:${artPath}`, `MLflow: artifact ${artPath} changed after it was journaled (sha256 differs); uploading the current bytes`);
    if (t.uploadedArtifacts[artPath] === actual) return 0;
    await this.client.uploadArtifact(t.artifactUri, artPath, data);
    t.uploadedArtifacts[artPath] = actual;
    updateTarget(this.dir, this.client.uri, t);
    return 1;
  }

  /** Files that live outside artifacts/: the resolved config (unless journaled), and checkpoints when asked. */
  private async uploadRunFiles(): Promise<number> {
    let n = 0;
    // The runner journals the resolved config as an artifact; a run that did not gets the
    // run directory's config.yaml under the same name.
    if (this.target!.uploadedArtifacts['config.yaml'] === undefined && existsSync(join(this.dir, 'config.yaml'))) n += await this.uploadArtifact('config.yaml', 'config.yaml');
    if (this.opts.logCheckpoints) {
      const root = join(this.dir, 'checkpoints');
      const walk = (d: string): string[] =>
        existsSync(d) ? readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : [join(d, f)])) : [];
      for (const f of walk(root)) {
        const rel = relative(this.dir, f).split(sep).join('/');
        if (this.target!.uploadedArtifacts[rel] !== sha256File(f)) n += await this.uploadArtifact(rel, rel);
      }
    }
    return n;
  }
}
