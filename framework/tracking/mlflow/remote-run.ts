/**
 * Finding or creating the MLflow run that mirrors a local run, exactly once: under a lock in
 * the run dir, first the state file, then a search by the `rass.run_id` tag (covers a crash
 * between the create call and the state write), and only then runs/create. A sweep trial's
 * parent is resolved the same way, so the parent MLflow run exists before its children.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { userInfo } from 'node:os';
import type { JournalEvent } from '../events.js';
import type { KeyValue, MlflowClient } from './client.js';
import { MLFLOW_LIMITS, truncateValue } from './limits.js';
import { readJournal } from './journal-tail.js';
import { type MlflowTargetState, targetState, updateTarget, withLock } from './state.js';

export type RunEvent = Extract<JournalEvent, { type: 'run' }>;

export const LOCAL_RUN_ID_TAG = 'rass.run_id';

export interface RemoteRunOptions {
  /** MLflow experiment name; default: the journal's experiment */
  experimentName?: string;
  /** finds a local run's directory from its id (for parent runs); default: search near `dir` */
  resolveRunDir?: (runId: string, fromDir: string) => string | undefined;
}

/** The journal's `run` event (the first event of every run). */
export function runEventOf(dir: string): RunEvent | undefined {
  const journal = join(dir, 'journal.jsonl');
  if (!existsSync(journal)) return undefined;
  // Only the head of the journal is needed; the run event is its first line.
  const head = readFileSync(journal, 'utf8');
  const nl = head.indexOf('\n');
  if (nl < 0) return undefined;
  try {
    const ev = JSON.parse(head.slice(0, nl)) as JournalEvent;
    if (ev.type === 'run') return ev;
  } catch {
    /* fall through to a full read */
  }
  return readJournal(journal).find((e): e is RunEvent => e.type === 'run');
}

/**
 * A local run's directory from its id: runs live in <root>/<experiment>/<run-id>/, and a
 * sweep may nest its trials below the parent's directory, so look at ancestors, siblings and
 * the other experiment folders of the store.
 */
export function findRunDir(runId: string, fromDir: string): string | undefined {
  let a = dirname(fromDir);
  for (let i = 0; i < 5 && a !== dirname(a); i++, a = dirname(a)) {
    if (basename(a) === runId && existsSync(join(a, 'journal.jsonl'))) return a;
    const sib = join(a, runId);
    if (existsSync(join(sib, 'journal.jsonl'))) return sib;
  }
  const root = dirname(dirname(fromDir));
  try {
    for (const e of readdirSync(root, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const c = join(root, e.name, runId);
      if (existsSync(join(c, 'journal.jsonl'))) return c;
    }
  } catch {
    /* no store root */
  }
  return undefined;
}

/** A readable summary for mlflow.note.content: who ran what, and the resolved config. */
export function noteContent(dir: string, run: RunEvent): string {
  const cfgPath = join(dir, 'config.yaml');
  const cfg = existsSync(cfgPath) ? readFileSync(cfgPath, 'utf8') : undefined;
  const head = [
    `rass run \`${run.runId}\` of experiment \`${run.experiment}\`${run.parentRunId ? ` (trial of \`${run.parentRunId}\`)` : ''}`,
    run.configHash ? `config hash: \`${run.configHash}\`` : undefined,
    '',
  ].filter((l) => l !== undefined).join('\n');
  const body = cfg ? `\nResolved config:\n\n\`\`\`yaml\n${cfg.trimEnd()}\n\`\`\`\n` : '';
  return truncateValue(head + body, MLFLOW_LIMITS.tagValueLength).value;
}

function systemTags(dir: string, run: RunEvent, parentMlflowId: string | undefined, env: Record<string, string | undefined>): KeyValue[] {
  let user = env.USER ?? env.USERNAME;
  if (!user) {
    try {
      user = userInfo().username;
    } catch {
      user = 'unknown';
    }
  }
  const tags: KeyValue[] = [
    { key: 'mlflow.runName', value: truncateValue(run.name, MLFLOW_LIMITS.tagValueLength).value },
    { key: 'mlflow.user', value: user },
    { key: 'mlflow.source.type', value: 'LOCAL' },
    { key: 'mlflow.source.name', value: 'rass' },
    { key: 'mlflow.note.content', value: noteContent(dir, run) },
    { key: LOCAL_RUN_ID_TAG, value: run.runId },
    { key: 'rass.experiment', value: run.experiment },
  ];
  if (run.configHash) tags.push({ key: 'rass.config_hash', value: run.configHash });
  if (parentMlflowId) tags.push({ key: 'mlflow.parentRunId', value: parentMlflowId });
  const commit = gitCommit(dir);
  if (commit) tags.push({ key: 'mlflow.source.git.commit', value: commit });
  return tags;
}

/** The commit of the working tree the run came from, read from .git without spawning git. */
function gitCommit(dir: string): string | undefined {
  let d = process.cwd();
  void dir;
  for (let i = 0; i < 6; i++, d = dirname(d)) {
    const head = join(d, '.git', 'HEAD');
    if (!existsSync(head)) continue;
    try {
      const h = readFileSync(head, 'utf8').trim();
      if (!h.startsWith('ref: ')) return /^[0-9a-f]{40}$/u.test(h) ? h : undefined;
      const refFile = join(d, '.git', h.slice(5));
      if (existsSync(refFile)) return readFileSync(refFile, 'utf8').trim();
      const packed = join(d, '.git', 'packed-refs');
      if (existsSync(packed)) {
        const line = readFileSync(packed, 'utf8').split('\n').find((l) => l.endsWith(' ' + h.slice(5)));
        if (line) return line.split(' ')[0];
      }
    } catch {
      return undefined;
    }
    return undefined;
  }
  return undefined;
}

/** The MLflow run mirroring the local run in `dir` on the client's server, created if needed. */
export async function ensureRemoteRun(
  client: MlflowClient,
  dir: string,
  opts: RemoteRunOptions & { env?: Record<string, string | undefined>; warn?: (m: string) => void } = {},
  depth = 0,
): Promise<MlflowTargetState> {
  const known = targetState(dir, client.uri);
  if (known) return known;
  const run = runEventOf(dir);
  if (!run) throw new Error(`${join(dir, 'journal.jsonl')}: no run event yet; cannot create the MLflow run`);
  let parentMlflowId: string | undefined;
  if (run.parentRunId) {
    if (depth > 8) throw new Error(`run ${run.runId}: parent chain too deep (a cycle of parentRunId?)`);
    const pdir = (opts.resolveRunDir ?? findRunDir)(run.parentRunId, dir);
    // Without the parent's directory the trial is still tracked, just not nested.
    if (!pdir) opts.warn?.(`MLflow: parent run ${run.parentRunId} of ${run.runId} is not in the local run store near ${dir}; the MLflow run is created without mlflow.parentRunId`);
    else parentMlflowId = (await ensureRemoteRun(client, pdir, opts, depth + 1)).runId;
  }
  return withLock(dir, '.mlflow-create.lock', async () => {
    const again = targetState(dir, client.uri);
    if (again) return again;
    const experimentName = opts.experimentName ?? run.experiment;
    const experimentId = await client.getOrCreateExperiment(experimentName);
    const existing = (await client.searchAllRuns([experimentId], `tags.\`${LOCAL_RUN_ID_TAG}\` = '${run.runId.replace(/'/gu, "\\'")}'`)).find(
      (r) => r.info.lifecycle_stage !== 'deleted',
    );
    const info = existing
      ? existing.info
      : await client.createRun({ experimentId, runName: run.name, startTime: run.t, tags: systemTags(dir, run, parentMlflowId, opts.env ?? process.env), userId: undefined });
    const target: MlflowTargetState = { experimentId, runId: info.run_id, artifactUri: info.artifact_uri, ackedSeq: -1, uploadedArtifacts: {} };
    updateTarget(dir, client.uri, target);
    return target;
  });
}
