/**
 * `rass runs sync`: upload runs recorded offline (or whose live upload was cut short) to an
 * MLflow server. Each run resumes from what that server acknowledged (mlflow.json), so a
 * second sync uploads nothing new. Parents go before their trials.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { MlflowClient, type MlflowClientOptions, clientOptionsFromEnv } from './mlflow/client.js';
import { findRunDir, runEventOf } from './mlflow/remote-run.js';
import { RunShipper } from './mlflow/shipper.js';
import { targetState, tryLock } from './mlflow/state.js';

export interface SyncOptions {
  /** the local run store (runs/) */
  runsRoot: string;
  /** run ids or run directories; empty: every run in the store */
  runs: string[];
  /** MLflow tracking URI */
  uri: string;
  env: Record<string, string | undefined>;
  experimentName?: string;
  logCheckpoints?: boolean;
  /** client overrides (retry policy in tests) */
  client?: Partial<MlflowClientOptions>;
  warn?: (message: string) => void;
}

export interface SyncResult {
  runId: string;
  dir: string;
  mlflowRunId?: string;
  /** journal events acknowledged by this sync */
  events: number;
  requests: number;
  outcome: 'uploaded' | 'up-to-date' | 'skipped' | 'failed';
  message?: string;
  conflicts: string[];
}

/** Every run directory (holding a journal.jsonl) under the store, at any depth up to 4. */
export function listRunDirs(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    if (depth > 4) return;
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    if (entries.includes('journal.jsonl')) out.push(d);
    for (const e of entries) {
      const p = join(d, e);
      if (!e.startsWith('.') && e !== 'artifacts' && e !== 'checkpoints' && statSync(p).isDirectory()) walk(p, depth + 1);
    }
  };
  walk(root, 0);
  return out.sort();
}

function resolveSelector(root: string, sel: string, cwd: string): string {
  const asPath = isAbsolute(sel) ? sel : resolve(cwd, sel);
  if (existsSync(join(asPath, 'journal.jsonl'))) return asPath;
  const byId = listRunDirs(root).filter((d) => d.endsWith('/' + sel) || d.endsWith('\\' + sel));
  if (byId.length === 1) return byId[0];
  if (byId.length > 1) throw new UserError(`run "${sel}" is ambiguous in ${root}: ${byId.join(', ')}`);
  throw new UserError(`run "${sel}": no run directory with that id in ${root}, and no journal.jsonl at ${asPath}`);
}

export async function syncRuns(opts: SyncOptions, cwd = process.cwd()): Promise<SyncResult[]> {
  const root = resolve(cwd, opts.runsRoot);
  const dirs = opts.runs.length ? opts.runs.map((s) => resolveSelector(root, s, cwd)) : listRunDirs(root);
  // Parents first: a trial's MLflow run needs its parent's id (ensureRemoteRun would create the
  // parent anyway, but uploading it fully first keeps the order readable in the output).
  const depth = (d: string, n = 0): number => {
    const ev = runEventOf(d);
    if (!ev?.parentRunId || n > 8) return n;
    const p = findRunDir(ev.parentRunId, d);
    return p ? depth(p, n + 1) : n + 1;
  };
  const ordered = [...new Set(dirs)].map((d) => ({ d, k: depth(d) })).sort((a, b) => a.k - b.k || a.d.localeCompare(b.d)).map((x) => x.d);
  const client = new MlflowClient({ ...clientOptionsFromEnv(opts.uri, opts.env), ...opts.client });
  const results: SyncResult[] = [];
  for (const dir of ordered) {
    const run = runEventOf(dir);
    const base = { runId: run?.runId ?? dir, dir, events: 0, requests: 0, conflicts: [] as string[] };
    if (!run) {
      results.push({ ...base, outcome: 'skipped', message: 'journal has no run event' });
      continue;
    }
    const lock = tryLock(dir, '.mlflow-ship.lock');
    if ('heldBy' in lock) {
      results.push({ ...base, outcome: 'skipped', message: `being uploaded by process ${lock.heldBy}` });
      continue;
    }
    try {
      const before = targetState(dir, client.uri)?.conflicts?.length ?? 0;
      const shipper = new RunShipper({ client, dir, env: opts.env, experimentName: opts.experimentName, logCheckpoints: opts.logCheckpoints, warn: opts.warn });
      const p = await shipper.ship();
      const conflicts = (targetState(dir, client.uri)?.conflicts ?? []).slice(before);
      results.push({ ...base, mlflowRunId: shipper.mlflowRunId, events: p.events, requests: p.requests, conflicts, outcome: p.events > 0 || p.requests > 0 ? 'uploaded' : 'up-to-date' });
    } catch (e) {
      results.push({ ...base, mlflowRunId: targetState(dir, client.uri)?.runId, outcome: 'failed', message: client.redactor.redact((e as Error).message) });
    } finally {
      lock.release();
    }
  }
  return results;
}
