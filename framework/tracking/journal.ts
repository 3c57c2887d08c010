/**
 * The run journal (`journal.jsonl`): an append-only write-ahead log, one JSON event a line.
 * Writes go through one kept file descriptor. Events that must survive a crash (params,
 * tags, status, artifacts, run) are fsync'd at once; metrics are fsync'd every
 * `syncEvery` events or `syncIntervalMs`, because fsync per training step costs more
 * than the step on small models (measured: fsync every 50 events still took ~5% of a tiny
 * trial's time). A killed process loses no written event (it is in the OS already); only a
 * machine crash can lose the unsynced tail of metrics, at most `syncIntervalMs` of them.
 * A process killed mid-write leaves at most one torn last line, which the reader reports
 * (never hides) and `openForAppend` truncates before it continues.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { UserError } from '../errors.js';
import type { JournalEvent, NewJournalEvent } from './events.js';

export interface TornLine {
  /** 1-based line number of the incomplete line */
  line: number;
  /** bytes of the incomplete line (without a newline) */
  bytes: number;
  /** its text (truncated to 200 characters) */
  text: string;
  /** byte offset where the torn line starts (truncate here to repair) */
  offset: number;
}

export interface JournalReadResult {
  events: JournalEvent[];
  /** the last line had no newline and did not parse: the writer was killed mid-write */
  torn?: TornLine;
  /** lines in the middle that do not parse or break the seq order, as "file:line: reason" */
  errors: string[];
}

/** Read a journal. Never throws for content problems: they are reported in `torn` / `errors`. */
export function readJournal(file: string): JournalReadResult {
  if (!existsSync(file)) throw new UserError(`${file}: no journal (is this a run directory?)`);
  const buf = readFileSync(file);
  const events: JournalEvent[] = [];
  const errors: string[] = [];
  let torn: TornLine | undefined;
  let start = 0;
  let line = 0;
  while (start < buf.length) {
    line++;
    const nl = buf.indexOf(0x0a, start);
    const end = nl === -1 ? buf.length : nl;
    const text = buf.subarray(start, end).toString('utf8');
    if (nl === -1) {
      // No newline: the last write did not complete. A complete JSON object without its
      // newline is still torn (the writer always ends a record with "\n").
      torn = { line, bytes: end - start, text: text.slice(0, 200), offset: start };
      break;
    }
    if (text.trim() !== '') {
      try {
        const ev = JSON.parse(text) as JournalEvent;
        if (typeof ev !== 'object' || ev === null || typeof ev.type !== 'string' || typeof ev.seq !== 'number') {
          errors.push(`${file}:${line}: not a journal event (needs "type" and "seq")`);
        } else {
          const want = events.length === 0 ? 0 : events[events.length - 1].seq + 1;
          if (ev.seq !== want) errors.push(`${file}:${line}: seq ${ev.seq}, expected ${want}`);
          events.push(ev);
        }
      } catch (e) {
        errors.push(`${file}:${line}: corrupt line (${(e as Error).message})`);
      }
    }
    start = nl + 1;
  }
  return { events, torn, errors };
}

export interface JournalWriterOptions {
  /** fsync after this many unsynced metric events (default 2000) */
  syncEvery?: number;
  /** ... or when the last fsync is older than this (default 2000 ms) */
  syncIntervalMs?: number;
  /** called after every append (trackers' onAppend) */
  onAppend?: () => void;
}

const tornFaultSeq = (() => {
  const m = /^torn-at-seq:(\d+)$/.exec(process.env.RASS_JOURNAL_FAULT ?? '');
  return m ? Number(m[1]) : undefined;
})();

const DURABLE: ReadonlySet<string> = new Set(['run', 'params', 'tags', 'status', 'artifact', 'input']);

export class JournalWriter {
  private fd: number | undefined;
  private nextSeq: number;
  private unsynced = 0;
  private lastSync = Date.now();
  private readonly syncEvery: number;
  private readonly syncIntervalMs: number;
  onAppend: (() => void) | undefined;

  private constructor(readonly file: string, fd: number, nextSeq: number, opts: JournalWriterOptions) {
    this.fd = fd;
    this.nextSeq = nextSeq;
    this.syncEvery = opts.syncEvery ?? 2000;
    this.syncIntervalMs = opts.syncIntervalMs ?? 2000;
    this.onAppend = opts.onAppend;
  }

  /** Create a new journal; fails if one exists. */
  static create(file: string, opts: JournalWriterOptions = {}): JournalWriter {
    return new JournalWriter(file, openSync(file, 'wx'), 0, opts);
  }

  /**
   * Continue an existing journal: a torn last line is cut off (the caller reported it from
   * `read`), and numbering continues after the last complete event.
   */
  static openForAppend(file: string, opts: JournalWriterOptions = {}): { writer: JournalWriter; read: JournalReadResult } {
    const read = readJournal(file);
    const fd = openSync(file, 'r+');
    if (read.torn) {
      ftruncateSync(fd, read.torn.offset);
      fsyncSync(fd);
    }
    closeSync(fd);
    const afd = openSync(file, 'a');
    const last = read.events[read.events.length - 1];
    const w = new JournalWriter(file, afd, last ? last.seq + 1 : 0, opts);
    w.lastSync = Date.now();
    return { writer: w, read };
  }

  get seq(): number {
    return this.nextSeq;
  }

  get closed(): boolean {
    return this.fd === undefined;
  }

  /** Append one event; returns it with `seq` and `t` filled in. */
  append(e: NewJournalEvent): JournalEvent {
    if (this.fd === undefined) throw new Error(`journal ${this.file} is closed`);
    const ev = { ...e, seq: this.nextSeq, t: e.t ?? Date.now() } as JournalEvent;
    const line = JSON.stringify(ev) + '\n';
    if (tornFaultSeq !== undefined && ev.seq === tornFaultSeq) this.tornWriteAndHang(line);
    // One write call per record: a kill between records never leaves a partial one behind
    // except for the record being written, which the reader reports as torn.
    writeSync(this.fd, line);
    this.nextSeq++;
    this.unsynced++;
    if (DURABLE.has(ev.type) || this.unsynced >= this.syncEvery || Date.now() - this.lastSync >= this.syncIntervalMs) this.sync();
    this.onAppend?.();
    return ev;
  }

  /**
   * Fault injection for the crash tests (RASS_JOURNAL_FAULT=torn-at-seq:N): write half of
   * record N, make it durable, say so on stderr, and block until the test kills the process.
   */
  private tornWriteAndHang(line: string): never {
    writeSync(this.fd!, line.slice(0, Math.max(1, Math.floor(line.length / 2))));
    fsyncSync(this.fd!);
    process.stderr.write(`journal fault: torn write at seq ${this.nextSeq}\n`);
    for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  }

  sync(): void {
    if (this.fd === undefined || this.unsynced === 0) return;
    fsyncSync(this.fd);
    this.unsynced = 0;
    this.lastSync = Date.now();
  }

  close(): void {
    if (this.fd === undefined) return;
    this.sync();
    closeSync(this.fd);
    this.fd = undefined;
  }
}
