/**
 * Catching up the MLflow mirror of finished trials. A trial's run is mirrored live by its own
 * tracker, which the runner gives a bounded time to finish after the final status: a worker
 * killed in that window (the sweep SIGKILLed, a lost machine) or a slow server leaves a trial
 * FINISHED locally with the end of its journal never uploaded. Re-running the sweep skips such
 * a trial, so the sweep itself ships what is missing, from the last acknowledged event (no
 * duplicates), for every trial whose mirror is behind its journal.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { mlflowConfigOf } from './factory.js';
import { targetState } from './state.js';
import { readRunConfig } from '../run-store.js';
import { syncRuns } from '../sync.js';

/** seq of the journal's last complete event (reads only the file's tail), or -1. */
export function lastJournalSeq(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const n = Math.min(size, 256 * 1024);
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, size - n);
    const lines = buf.toString('utf8').split('\n');
    // the last line is empty after a complete record, or a torn record the reader ignores
    for (let i = lines.length - 2; i >= 0; i--) {
      try {
        const seq = (JSON.parse(lines[i]) as { seq?: unknown }).seq;
        if (typeof seq === 'number') return seq;
      } catch {
        /* a partial first line of the window, or a torn one */
      }
    }
    return -1;
  } finally {
    closeSync(fd);
  }
}

/** Ship the missing tail of every run in `dirs` whose config mirrors it to MLflow and whose mirror is behind. */
export async function catchUpMirrors(dirs: readonly string[], runsRoot: string, env: Record<string, string | undefined>, warn: (m: string) => void): Promise<void> {
  // one sync per destination (server, experiment, checkpoint policy)
  const byTarget = new Map<string, { uri: string; experimentName?: string; logCheckpoints: boolean; dirs: string[] }>();
  for (const dir of dirs) {
    const config = existsSync(join(dir, 'journal.jsonl')) ? readRunConfig(dir) : undefined;
    if (!config) continue;
    const m = mlflowConfigOf({ config, env });
    if (!m) continue;
    const acked = targetState(dir, m.uri)?.ackedSeq ?? -1;
    if (acked >= lastJournalSeq(join(dir, 'journal.jsonl'))) continue;
    const key = JSON.stringify([m.uri, m.experiment_name ?? '', m.log_checkpoints === true]);
    const group = byTarget.get(key) ?? { uri: m.uri, ...(m.experiment_name ? { experimentName: m.experiment_name } : {}), logCheckpoints: m.log_checkpoints === true, dirs: [] };
    group.dirs.push(dir);
    byTarget.set(key, group);
  }
  for (const g of byTarget.values()) {
    try {
      const results = await syncRuns({ runsRoot, runs: g.dirs, uri: g.uri, env, experimentName: g.experimentName, logCheckpoints: g.logCheckpoints, warn });
      for (const r of results) {
        if (r.outcome === 'failed' || r.outcome === 'skipped') warn(`MLflow: run ${r.runId} is not fully mirrored yet (${r.message ?? r.outcome}); \`rass runs sync\` or the next sweep run finishes it`);
      }
    } catch (e) {
      warn(`MLflow: could not catch up ${g.dirs.length} trial run(s): ${(e as Error).message}; \`rass runs sync\` finishes them`);
    }
  }
}
