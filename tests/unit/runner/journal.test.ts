/**
 * Journal writer/reader: contiguous seq, torn last line reported (not hidden) with its line
 * and size, corrupt middle lines named file:line, append after a torn tail continues the
 * numbering; run ids; param flattening; the run lock (second writer refused, stale lock taken over).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { JournalWriter, readJournal } from '../../../framework/tracking/journal.js';
import { RUN_ID_PATTERN, newRunId } from '../../../framework/tracking/run-id.js';
import { flattenParams } from '../../../framework/tracking/local-run.js';
import { RunLock, lockState } from '../../../framework/tracking/run-lock.js';
import { isUserError } from '../../../framework/errors.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'rass-journal-'));

describe('journal', () => {
  it('round-trips events with contiguous seq and times', () => {
    const f = join(tmp(), 'journal.jsonl');
    const w = JournalWriter.create(f);
    w.append({ type: 'status', status: 'RUNNING' });
    w.append({ type: 'params', params: { a: '1' } });
    for (let i = 1; i <= 120; i++) w.append({ type: 'metrics', step: i, values: { loss: 1 / i } });
    w.append({ type: 'status', status: 'FINISHED' });
    w.close();
    const r = readJournal(f);
    assert.equal(r.torn, undefined);
    assert.deepEqual(r.errors, []);
    assert.equal(r.events.length, 123);
    assert.deepEqual(r.events.map((e) => e.seq), Array.from({ length: 123 }, (_, i) => i));
    assert.ok(r.events.every((e) => typeof e.t === 'number' && e.t > 1.6e12));
    const m = r.events[50];
    assert.equal(m.type, 'metrics');
    assert.equal(m.type === 'metrics' && m.values.loss, 1 / 49);
    assert.throws(() => JournalWriter.create(f), /EEXIST/, 'create refuses to overwrite a journal');
  });

  it('reports a torn last line with line number and size, and keeps every complete event', () => {
    const f = join(tmp(), 'journal.jsonl');
    const w = JournalWriter.create(f);
    for (let i = 0; i < 5; i++) w.append({ type: 'metrics', step: i, values: { x: i } });
    w.close();
    appendFileSync(f, '{"type":"metrics","step":5,"val');
    const r = readJournal(f);
    assert.equal(r.events.length, 5);
    assert.ok(r.torn);
    assert.equal(r.torn.line, 6);
    assert.equal(r.torn.bytes, '{"type":"metrics","step":5,"val'.length);
    assert.match(r.torn.text, /"step":5/);
    assert.deepEqual(r.errors, []);
  });

  it('names corrupt middle lines and seq gaps as file:line errors', () => {
    const f = join(tmp(), 'journal.jsonl');
    writeFileSync(f, ['{"type":"status","status":"RUNNING","seq":0,"t":1}', 'garbage{', '{"type":"tags","tags":{},"seq":2,"t":2}', ''].join('\n'));
    const r = readJournal(f);
    assert.equal(r.events.length, 2);
    assert.equal(r.errors.length, 2);
    assert.match(r.errors[0], new RegExp(`${f.replace(/[/\\]/g, '.')}:2: corrupt line`));
    assert.match(r.errors[1], /:3: seq 2, expected 1/);
  });

  it('openForAppend cuts a torn tail and continues seq contiguously', () => {
    const f = join(tmp(), 'journal.jsonl');
    const w = JournalWriter.create(f);
    for (let i = 0; i < 3; i++) w.append({ type: 'metrics', step: i, values: { x: i } });
    w.close();
    appendFileSync(f, '{"type":"metr');
    const { writer, read } = JournalWriter.openForAppend(f);
    assert.equal(read.torn?.line, 4);
    writer.append({ type: 'status', status: 'RUNNING', message: 'resumed' });
    writer.close();
    const r = readJournal(f);
    assert.equal(r.torn, undefined);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.events.map((e) => e.seq), [0, 1, 2, 3]);
    assert.equal(r.events[3].type, 'status');
  });
});

describe('run ids and params', () => {
  it('run ids are time-sortable and unique', () => {
    const a = newRunId(new Date(Date.UTC(2026, 0, 2, 3, 4, 5)));
    assert.match(a, RUN_ID_PATTERN);
    assert.ok(a.startsWith('20260102-030405-'));
    const b = newRunId(new Date(Date.UTC(2026, 0, 2, 3, 4, 6)));
    assert.ok(a < b);
    const many = new Set(Array.from({ length: 200 }, () => newRunId(new Date(0))));
    assert.ok(many.size >= 199, 'random suffixes collide');
  });

  it('flattens nested params to dotted string keys', () => {
    assert.deepEqual(flattenParams({ a: { b: 1, c: { d: 'x' } }, e: [1, { f: true }], g: null, h: {}, i: [] }), {
      'a.b': '1', 'a.c.d': 'x', 'e.0': '1', 'e.1.f': 'true', g: 'null', h: '{}', i: '[]',
    });
  });
});

describe('run lock', () => {
  it('refuses a second writer with the owner named, and releases', () => {
    const d = tmp();
    const lock = RunLock.acquire(d);
    assert.equal(lockState(d), 'held');
    assert.throws(() => RunLock.acquire(d), (e: unknown) => isUserError(e) && new RegExp(`locked by process ${process.pid} on ${hostname()}`).test((e as Error).message));
    lock.release();
    assert.equal(existsSync(join(d, 'lock')), false);
    assert.equal(lockState(d), 'none');
  });

  it('takes over a stale lock (dead pid on this host) with a warning', () => {
    const d = tmp();
    // pid 2^22+12345 is above Linux's pid_max default range: no such process
    writeFileSync(join(d, 'lock'), JSON.stringify({ pid: 4206649, host: hostname(), started: '2026-01-01T00:00:00Z' }));
    assert.equal(lockState(d), 'stale');
    const warnings: string[] = [];
    const lock = RunLock.acquire(d, (m) => warnings.push(m));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /stale lock \(process 4206649/);
    assert.equal(JSON.parse(readFileSync(join(d, 'lock'), 'utf8')).pid, process.pid);
    lock.release();
  });
});
