/**
 * The local run store: `runs/<experiment>/<run-id>/` directories, each with journal.jsonl,
 * config.yaml, overrides.json, artifacts/, checkpoints/ and, while a process writes it, `lock`.
 * Everything `rass runs` shows is read back from the journal.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { parse } from 'yaml';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import type { JournalEvent, RunStatus } from './events.js';
import { readJournal, type TornLine } from './journal.js';
import { lockState } from './run-lock.js';

/** Every run directory (one holding journal.jsonl) under `root`, up to 4 levels deep, sorted by run id. */
export function findRunDirs(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    if (entries.includes('journal.jsonl')) {
      out.push(d);
      return;
    }
    if (depth >= 4) return;
    for (const e of entries) {
      const p = join(d, e);
      if (!e.startsWith('.') && statSync(p, { throwIfNoEntry: false })?.isDirectory()) walk(p, depth + 1);
    }
  };
  walk(root, 0);
  return out.sort((a, b) => basename(a).localeCompare(basename(b)));
}

/** A run given as a directory path, a run id, or a unique prefix of one. */
export function resolveRunDir(root: string, selector: string, cwd: string): string {
  const asPath = isAbsolute(selector) ? selector : resolve(cwd, selector);
  if (existsSync(join(asPath, 'journal.jsonl'))) return asPath;
  const dirs = findRunDirs(root);
  const exact = dirs.filter((d) => basename(d) === selector);
  if (exact.length === 1) return exact[0];
  const pre = exact.length ? exact : dirs.filter((d) => basename(d).startsWith(selector));
  if (pre.length === 1) return pre[0];
  if (pre.length > 1) throw new UserError(`run "${selector}" is ambiguous in ${root}: ${pre.map((d) => basename(d)).join(', ')}`);
  throw new UserError(`run "${selector}": no run with that id or id prefix in ${root}, and no journal.jsonl at ${asPath}`);
}

export interface RunSummary {
  dir: string;
  runId: string;
  experiment: string;
  name: string;
  /** the last journaled status */
  status: RunStatus | 'UNKNOWN';
  /** a RUNNING run whose writer is gone (killed hard): it did not finish */
  stale: boolean;
  /** status for display, e.g. "RUNNING? (stale: process gone)" */
  displayStatus: string;
  finished: boolean;
  statusMessage?: string;
  start?: number;
  /** time of the last event (end time for finished runs) */
  last?: number;
  /**
   * Time spent running, summed over attempts (the first start and every resume): what
   * `rass run`'s summary, `runs list`, `runs show` and sweeps all call the duration. The time
   * between a kill and the resume, or between two invocations of a sweep, is not in it.
   */
  durationMs?: number;
  /** One entry per start or resume of the run, in order. */
  attempts: Attempt[];
  params: Record<string, string>;
  /** the latest value of each metric, with its step */
  metrics: Record<string, { value: number; step: number }>;
  tags: Record<string, string>;
  artifacts: { path: string; size: number; sha256: string }[];
  events: number;
  torn?: TornLine;
  errors: string[];
}

export interface Attempt {
  /** time of the RUNNING status that began it */
  start: number;
  /** its final status's time, or (killed hard) its last event's */
  end: number;
  /** how it ended; undefined when its process died without a final status */
  status?: RunStatus;
}

/**
 * The attempts of a run: each RUNNING status starts one, which lasts until the next final
 * status (FINISHED / FAILED / KILLED) or, for a process that died without one, its last
 * event before the next RUNNING. Events after a final status (a report written later) do
 * not extend it.
 */
export function attemptsOf(events: readonly JournalEvent[]): Attempt[] {
  const out: Attempt[] = [];
  let open: Attempt | undefined;
  for (const e of events) {
    if (e.type === 'status' && e.status === 'RUNNING') {
      open = { start: e.t, end: e.t };
      out.push(open);
    } else if (open) {
      open.end = e.t;
      if (e.type === 'status') {
        open.status = e.status;
        open = undefined;
      }
    }
  }
  return out;
}

/**
 * Each metric's values by step, each step once: when a resumed run re-did steps, the later
 * attempt's value (the last journaled) replaces the earlier one. Sorted by step.
 */
export function metricHistory(events: readonly JournalEvent[]): Record<string, { step: number; value: number; t: number }[]> {
  const byKey = new Map<string, Map<number, { step: number; value: number; t: number }>>();
  for (const e of events) {
    if (e.type !== 'metrics') continue;
    for (const [k, v] of Object.entries(e.values)) {
      let steps = byKey.get(k);
      if (!steps) byKey.set(k, (steps = new Map()));
      steps.set(e.step, { step: e.step, value: v ?? NaN, t: e.t });
    }
  }
  return Object.fromEntries([...byKey].map(([k, steps]) => [k, [...steps.values()].sort((a, b) => a.step - b.step)]));
}

export function summarizeEvents(dir: string, events: readonly JournalEvent[]): Omit<RunSummary, 'stale' | 'displayStatus' | 'finished' | 'torn' | 'errors'> {
  const s: Omit<RunSummary, 'stale' | 'displayStatus' | 'finished' | 'torn' | 'errors'> = {
    dir,
    runId: basename(dir),
    experiment: basename(resolve(dir, '..')),
    name: '',
    status: 'UNKNOWN',
    params: {},
    metrics: {},
    tags: {},
    artifacts: [],
    events: events.length,
    attempts: attemptsOf(events),
  };
  for (const e of events) {
    s.start ??= e.t;
    s.last = e.t;
    switch (e.type) {
      case 'run':
        s.runId = e.runId;
        s.experiment = e.experiment;
        s.name = e.name;
        break;
      case 'params':
        Object.assign(s.params, e.params);
        break;
      case 'metrics':
        for (const [k, v] of Object.entries(e.values)) s.metrics[k] = { value: v, step: e.step };
        break;
      case 'tags':
        Object.assign(s.tags, e.tags);
        break;
      case 'status':
        s.status = e.status;
        s.statusMessage = e.message;
        break;
      case 'artifact': {
        const i = s.artifacts.findIndex((a) => a.path === e.path);
        const rec = { path: e.path, size: e.size, sha256: e.sha256 };
        if (i >= 0) s.artifacts[i] = rec;
        else s.artifacts.push(rec);
        break;
      }
      default:
        break;
    }
  }
  if (s.attempts.length) s.durationMs = s.attempts.reduce((sum, a) => sum + (a.end - a.start), 0);
  else if (s.start !== undefined && s.last !== undefined) s.durationMs = s.last - s.start; // a journal without status events
  return s;
}

export function summarizeRun(dir: string): RunSummary {
  const r = readJournal(join(dir, 'journal.jsonl'));
  const base = summarizeEvents(dir, r.events);
  const lock = lockState(dir);
  const stale = base.status === 'RUNNING' && (lock === 'stale' || lock === 'none');
  const displayStatus = stale ? 'RUNNING? (stale: process gone)' : base.status === 'RUNNING' && lock === 'foreign' ? 'RUNNING (other host)' : base.status;
  return { ...base, stale, displayStatus, finished: base.status === 'FINISHED', torn: r.torn, errors: r.errors };
}

/** A run's resolved config (`config.yaml`) as a plain object; undefined when missing or unreadable. */
export function readRunConfig(dir: string): Record<string, unknown> | undefined {
  try {
    const v = parse(readFileSync(join(dir, 'config.yaml'), 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function formatMetric(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : v.toFixed(4);
}
