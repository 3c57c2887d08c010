/**
 * One run's local record while a process writes it: the directory, its lock, the journal
 * writer and the remote trackers that mirror the journal. Created fresh (`LocalRun.create`)
 * or reopened to continue a killed run (`LocalRun.reopen`).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize, sep } from 'node:path';
import { UserError } from '../errors.js';
import type { JournalEvent, NewJournalEvent, RunStatus } from './events.js';
import { JournalWriter, type JournalReadResult, type JournalWriterOptions } from './journal.js';
import { RunLock } from './run-lock.js';
import { ensureWritableDir } from './ensure-dir.js';
import type { RunTracker } from './tracker.js';

/** `{a: {b: 1}}` -> `{"a.b": "1"}`; arrays by index; null/undefined kept as "null". */
export function flattenParams(obj: Record<string, unknown>, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
      const entries = Array.isArray(v) ? Object.fromEntries(v.map((x, i) => [String(i), x])) : (v as Record<string, unknown>);
      if (Object.keys(entries).length === 0) out[key] = Array.isArray(v) ? '[]' : '{}';
      else flattenParams(entries, key, out);
    } else {
      out[key] = v === undefined || v === null ? 'null' : String(v);
    }
  }
  return out;
}

/** Write a file atomically: a temp file beside it, then rename. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

export interface LocalRunOptions extends JournalWriterOptions {
  warn?: (m: string) => void;
}

export class LocalRun {
  readonly artifactsDir: string;
  readonly checkpointsDir: string;
  private trackers: RunTracker[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private finalized = false;

  private constructor(
    readonly dir: string,
    readonly runId: string,
    readonly journal: JournalWriter,
    private readonly lock: RunLock,
    /** what was read back when reopening (torn tail, errors) */
    readonly reopened?: JournalReadResult,
  ) {
    this.artifactsDir = join(dir, 'artifacts');
    this.checkpointsDir = join(dir, 'checkpoints');
  }

  /** Make `runsDir/<experiment>/<runId>/` and start its journal. */
  static create(dir: string, runId: string, files: { configYaml: string; overrides: readonly string[]; extra?: Record<string, string> }, opts: LocalRunOptions = {}): LocalRun {
    // A directory without a journal records nothing: a process killed while creating it (a
    // sweep trial resumed after SIGKILL) left it; the lock below still refuses a live creator.
    if (existsSync(join(dir, 'journal.jsonl'))) throw new UserError(`run directory ${dir} already exists`);
    ensureWritableDir(dir, 'run directory');
    mkdirSync(join(dir, 'artifacts'), { recursive: true });
    mkdirSync(join(dir, 'checkpoints'), { recursive: true });
    const lock = RunLock.acquire(dir, opts.warn);
    try {
      writeFileAtomic(join(dir, 'config.yaml'), files.configYaml);
      writeFileAtomic(join(dir, 'overrides.json'), JSON.stringify(files.overrides, null, 2) + '\n');
      // more run-level files the caller keeps beside the config (the runner: config origins)
      for (const [name, text] of Object.entries(files.extra ?? {})) writeFileAtomic(join(dir, name), text);
      return new LocalRun(dir, runId, JournalWriter.create(join(dir, 'journal.jsonl'), opts), lock);
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  /** Reopen an existing run directory to continue it (resume). */
  static reopen(dir: string, opts: LocalRunOptions = {}): LocalRun {
    const lock = RunLock.acquire(dir, opts.warn);
    try {
      const { writer, read } = JournalWriter.openForAppend(join(dir, 'journal.jsonl'), opts);
      if (read.torn) opts.warn?.(`${join(dir, 'journal.jsonl')}:${read.torn.line}: torn last line (${read.torn.bytes} bytes, the writer was killed mid-write) removed before resuming`);
      for (const err of read.errors) opts.warn?.(err);
      const runEv = read.events.find((e) => e.type === 'run') as Extract<JournalEvent, { type: 'run' }> | undefined;
      mkdirSync(join(dir, 'artifacts'), { recursive: true });
      mkdirSync(join(dir, 'checkpoints'), { recursive: true });
      return new LocalRun(dir, runEv?.runId ?? dir.split(sep).pop()!, writer, lock, read);
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  /** Attach remote trackers: each is told about every append and flushed every `flushMs`. */
  attachTrackers(trackers: RunTracker[], flushMs = 5000): void {
    this.trackers = trackers;
    if (trackers.length === 0) return;
    this.journal.onAppend = () => {
      for (const t of this.trackers) t.onAppend();
    };
    this.flushTimer = setInterval(() => {
      for (const t of this.trackers) void t.flush({ timeoutMs: flushMs }).catch(() => {});
    }, flushMs);
    this.flushTimer.unref();
  }

  append(e: NewJournalEvent): JournalEvent {
    return this.journal.append(e);
  }

  logParams(params: Record<string, unknown>): void {
    const flat = flattenParams(params);
    if (Object.keys(flat).length) this.append({ type: 'params', params: flat });
  }

  logMetrics(step: number, values: Record<string, number>): void {
    if (!Number.isInteger(step) || step < 0) throw new Error(`logMetrics: step must be a non-negative integer, got ${step}`);
    const clean: Record<string, number> = {};
    for (const [k, v] of Object.entries(values)) {
      if (typeof v !== 'number') throw new Error(`logMetrics: metric "${k}" is not a number (${typeof v})`);
      clean[k] = v;
    }
    // JSON has no NaN/Infinity: they are journaled as null and read back as NaN by trackers
    if (Object.keys(clean).length) this.append({ type: 'metrics', step, values: clean });
  }

  setTags(tags: Record<string, string>): void {
    if (Object.keys(tags).length) this.append({ type: 'tags', tags: Object.fromEntries(Object.entries(tags).map(([k, v]) => [k, String(v)])) });
  }

  setStatus(status: RunStatus, message?: string): void {
    this.append(message === undefined ? { type: 'status', status } : { type: 'status', status, message });
  }

  /** `artifacts/<relPath>`, refusing paths that leave the artifacts directory. */
  artifactPath(relPath: string): string {
    const n = normalize(relPath);
    if (n.startsWith('..') || n.startsWith(sep) || /^[a-zA-Z]:/.test(n)) throw new UserError(`artifact path "${relPath}" must stay inside the run's artifacts/ directory`);
    return join(this.artifactsDir, n);
  }

  logArtifact(relPath: string, data: string | Uint8Array): void {
    const file = this.artifactPath(relPath);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    writeFileAtomic(file, bytes);
    this.append({ type: 'artifact', path: normalize(relPath).split(sep).join('/'), size: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') });
  }

  /**
   * Journal a file already under artifacts/ as it is now (size, sha256): for files another
   * process writes, such as a sweep trial's log. Journaled again after it grew, the newer
   * bytes are what trackers upload.
   */
  journalArtifactFile(relPath: string): void {
    const file = this.artifactPath(relPath);
    const bytes = readFileSync(file);
    this.append({ type: 'artifact', path: normalize(relPath).split(sep).join('/'), size: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') });
  }

  /**
   * Save a checkpoint atomically: `write` fills a temp directory, which is then renamed to
   * `checkpoints/<name>/`, and `checkpoints/LATEST` names it. A kill mid-write leaves the
   * previous checkpoint as the latest.
   */
  async saveCheckpoint(name: string, write: (dir: string) => Promise<void> | void): Promise<string> {
    if (!/^[A-Za-z0-9._-]+$/.test(name) || name === 'LATEST') throw new Error(`checkpoint name "${name}" must be letters, digits, '.', '_' or '-'`);
    const final = join(this.checkpointsDir, name);
    const tmp = join(this.checkpointsDir, `.tmp-${name}-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await write(tmp);
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    writeFileAtomic(join(this.checkpointsDir, 'LATEST'), name + '\n');
    return final;
  }

  /** The latest complete checkpoint directory, if any. */
  latestCheckpoint(): string | undefined {
    return latestCheckpointOf(this.dir);
  }

  /** Final status, flush and close trackers (bounded), close the journal, release the lock. */
  async finalize(status: RunStatus, message?: string, trackerTimeoutMs = 10_000): Promise<void> {
    if (this.finalized) return;
    this.finalized = true;
    if (this.flushTimer) clearInterval(this.flushTimer);
    try {
      this.setStatus(status, message);
      this.journal.sync();
    } finally {
      await Promise.all(this.trackers.map((t) => withTimeout(t.close({ timeoutMs: trackerTimeoutMs }), trackerTimeoutMs + 1000).catch(() => {})));
      this.journal.close();
      this.lock.release();
    }
  }
}

export function latestCheckpointOf(runDir: string): string | undefined {
  const cdir = join(runDir, 'checkpoints');
  const latest = join(cdir, 'LATEST');
  if (existsSync(latest)) {
    const name = readFileSync(latest, 'utf8').trim();
    if (name && existsSync(join(cdir, name))) return join(cdir, name);
  }
  // no LATEST: the newest complete directory (temp directories start with '.')
  if (!existsSync(cdir)) return undefined;
  const dirs = readdirSync(cdir).filter((n) => !n.startsWith('.') && statSync(join(cdir, n)).isDirectory());
  dirs.sort((a, b) => statSync(join(cdir, a)).mtimeMs - statSync(join(cdir, b)).mtimeMs || a.localeCompare(b));
  return dirs.length ? join(cdir, dirs[dirs.length - 1]) : undefined;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((res, rej) => {
    const t = setTimeout(() => res(undefined), ms);
    t.unref();
    p.then((v) => {
      clearTimeout(t);
      res(v);
    }, (e: unknown) => {
      clearTimeout(t);
      rej(e instanceof Error ? e : new Error(String(e)));
    });
  });
}
