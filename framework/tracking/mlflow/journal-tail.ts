/**
 * Reads a run's journal.jsonl incrementally: each call returns the complete events appended
 * since the previous call. A last line without its newline is a write still in progress (or
 * torn by a crash): it is left for the next call instead of being parsed half-written.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { JournalEvent } from '../events.js';

export class JournalTail {
  private offset = 0;
  private lineNo = 0;
  /** seq the next event must carry (the journal's seq is contiguous from 0) */
  nextSeq = 0;

  constructor(readonly file: string) {}

  /** Complete events appended since the last call (none when the file does not exist yet). */
  readNew(): JournalEvent[] {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    let buf: Buffer;
    try {
      const size = fstatSync(fd).size;
      if (size <= this.offset) return [];
      buf = Buffer.allocUnsafe(size - this.offset);
      let got = 0;
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, this.offset + got);
        if (n === 0) break;
        got += n;
      }
      buf = buf.subarray(0, got);
    } finally {
      closeSync(fd);
    }
    const lastNl = buf.lastIndexOf(0x0a);
    if (lastNl < 0) return [];
    const text = buf.subarray(0, lastNl).toString('utf8');
    this.offset += lastNl + 1;
    const out: JournalEvent[] = [];
    for (const line of text.split('\n')) {
      this.lineNo++;
      if (line.trim() === '') continue;
      let ev: JournalEvent;
      try {
        ev = JSON.parse(line) as JournalEvent;
      } catch {
        throw new Error(`${this.file}:${this.lineNo}: not a JSON journal event (corrupt journal line)`);
      }
      if (ev.seq !== this.nextSeq) {
        throw new Error(`${this.file}:${this.lineNo}: journal seq ${ev.seq} where ${this.nextSeq} was expected (the journal must be contiguous)`);
      }
      this.nextSeq++;
      out.push(ev);
    }
    return out;
  }
}

/** Every complete event of a journal file (a torn last line is ignored). */
export function readJournal(file: string): JournalEvent[] {
  return new JournalTail(file).readNew();
}
