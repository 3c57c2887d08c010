/**
 * Running a sweep: validate every trial's config up front, then run the trials (what
 * `rass run` does with the trial's overrides, a stable run id and the sweep's parent run id)
 * on a local pool of N worker processes (local-pool.ts) or as a Slurm job array. The sweep
 * itself is a run (the parent) in the same store; re-running the same sweep reopens it, skips
 * FINISHED trials, resumes trials that were interrupted or KILLED (same run directory, so
 * nothing is recorded twice, in MLflow either) and, with --retry-failed, re-runs FAILED ones.
 * A crashing trial fails alone.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, extname, join, resolve } from 'node:path';
import { applyOverrides, dumpConfig, loadConfigPlugins, validateConfig, formatOrigin, ConfigError, type ResolvedConfig } from '../config/index.js';
import type { PluginRegistry } from '../plugins/registry.js';
import { UserError, isUserError } from '../errors.js';
import { LocalRun } from '../tracking/local-run.js';
import { summarizeRun, formatDuration, formatMetric, type RunSummary } from '../tracking/run-store.js';
import { startTrackers } from '../tracking/trackers.js';
import { packageRoot } from '../paths.js';
import { formatTable } from '../cli/table.js';
import { expandSweep, formatOverrides, parseSweepSpec, type SweepSpec, type Trial } from './spec.js';
import { buildSweepReport } from './report.js';
import { accountedStates, activeTasks, cancel, submitArray, type SlurmOptions } from './slurm.js';
import { WorkerPool, type LocalExecutorOptions, type PoolResult } from './local-pool.js';
import { closeTrialRun } from './close-trial-run.js';
import { catchUpMirrors } from './mirror-catch-up.js';
import { runArgv, type TrialRequest } from './trial-protocol.js';

/** Submit the trials as one Slurm job array and follow it until no task is left. */
async function runOnSlurm(
  plan: SweepPlan,
  o: SlurmOptions,
  trials: { rec: TrialRecord; args: string[] }[],
  maxParallel: number,
  io: { out: (s: string) => void; report: (rec: TrialRecord, ms: number) => void; journalLog: (name: string) => void; stopping: () => string | undefined; onCancel: (f: () => void) => void },
): Promise<void> {
  if (trials.length === 0) return;
  const logDir = join(plan.parentDir, 'artifacts', 'logs');
  const t0 = Date.now();
  const { jobId, script } = submitArray(join(plan.parentDir, 'slurm'), o, plan.name, trials.map((t) => ({ id: t.rec.id, args: t.args })), maxParallel, logDir);
  io.out(`sweep ${plan.name}: submitted Slurm job array ${jobId} (${trials.length} tasks, ${script})`);
  io.onCancel(() => cancel(jobId));
  const reported = new Set<string>();
  const pollMs = (o.poll_s ?? 2) * 1000;
  while (true) {
    // squeue -r lists every array task still pending or running as <job>_<index>
    const active = new Set(activeTasks(jobId).map((a) => a.task));
    for (const [i, t] of trials.entries()) {
      if (reported.has(t.rec.id) || active.has(`${jobId}_${i}`)) continue;
      updateFromRun(t.rec);
      if (t.rec.state === 'RUNNING' || t.rec.state === 'PENDING') {
        const acct = accountedStates(jobId).get(`${jobId}_${i}`);
        t.rec.state = io.stopping() ? 'KILLED' : 'FAILED';
        t.rec.message = `Slurm task ${jobId}_${i} ended without a final run status${acct ? ` (sacct: ${acct})` : ''}; see ${join(logDir, `slurm-${jobId}_${i}.log`)}`;
      }
      reported.add(t.rec.id);
      io.report(t.rec, Date.now() - t0);
      io.journalLog(`slurm-${jobId}_${i}.log`);
    }
    if (active.size === 0) break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * What the executor records for a trial the local pool ran, when the trial's own run did not
 * record the outcome (its process died, or it failed before its run existed) or must be
 * overridden (stopped for its time limit: FAILED, so a plain re-run does not resume it into
 * the same timeout). `closeRun`: the executor writes that final status into the trial's run.
 */
function executorVerdict(
  rec: TrialRecord,
  r: PoolResult,
  o: { stopping: boolean; logFile: string; executor: LocalExecutorOptions },
): { state: 'FAILED' | 'KILLED'; message: string; closeRun: boolean } | undefined {
  if (r.timedOut) return { state: 'FAILED', message: `timed out after ${o.executor.trial_timeout_s} s (trial_timeout_s); --retry-failed resumes it; see ${o.logFile}`, closeRun: true };
  if (rec.state !== 'RUNNING') return undefined;
  const state = o.stopping ? 'KILLED' : 'FAILED';
  if (!r.crashed) return { state, message: `${r.error ?? `trial exited with code ${r.exitCode}`}; see ${o.logFile}`, closeRun: false };
  const oom = r.outOfMemory ? `out of memory${o.executor.memory_mb ? ` at the ${o.executor.memory_mb} MiB heap limit` : ''}, ` : '';
  const cause = r.error ?? `trial process died without a final status (${oom}${r.signal ?? `exit code ${r.exitCode}`})`;
  return { state, message: `${cause}; see ${o.logFile}`, closeRun: true };
}

export type TrialState = 'FINISHED' | 'FAILED' | 'KILLED' | 'RUNNING' | 'PENDING' | 'SKIPPED';

export interface TrialRecord {
  id: string;
  overrides: string[];
  labels: Record<string, string>;
  runId: string;
  /** the trial's experiment (its run lives in <runs>/<experiment>/<runId>); variants can change it */
  experiment: string;
  dir: string;
  state: TrialState;
  message?: string;
  metrics: Record<string, number>;
}

export interface SweepPlan {
  name: string;
  spec: SweepSpec;
  cfg: ResolvedConfig;
  parentRunId: string;
  parentDir: string;
  runsDir: string;
  experiment: string;
  trials: Trial[];
  records: TrialRecord[];
}

/** Load a sweep config, expand and validate every trial (before anything runs). */
export async function planSweep(cfg: ResolvedConfig, registry: PluginRegistry, cwd: string): Promise<SweepPlan> {
  const raw = cfg.value.sweep;
  if (raw === undefined) throw new UserError(`${cfg.file}: no \`sweep:\` block (see configs/ablations/ for examples)`);
  const spec = parseSweepSpec(raw, (p) => {
    const segs = p.split('.').filter(Boolean);
    return `${formatOrigin(cfg.origin(['sweep', ...segs]))} sweep${p}`.trim();
  });
  const seed = typeof cfg.value.seed === 'number' ? cfg.value.seed : 0;
  const trials = expandSweep(spec, seed);
  const name = spec.name ?? basename(cfg.file, extname(cfg.file));
  // the parent's id depends on what the sweep computes (base config + spec), not on when it ran
  const { sweep: _s, runs_dir: _r, tracking: _t, ...base } = cfg.value;
  const hash = createHash('sha256').update(JSON.stringify([base, spec])).digest('hex').slice(0, 8);
  const parentRunId = `sweep-${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${hash}`;
  const runsDir = resolve(cwd, typeof cfg.value.runs_dir === 'string' ? cfg.value.runs_dir : 'runs');
  const experiment = experimentFolder(cfg.value.experiment);

  await loadConfigPlugins(cfg, registry);
  const issues: string[] = [];
  // each trial's experiment folder comes from its own resolved config: a variant may switch the experiment type
  const trialExperiment = new Map<string, string>();
  for (const t of trials) {
    try {
      const tc = applyOverrides(cfg, [...formatOverrides(t.overrides), 'sweep=~']);
      validateConfig(tc, registry);
      trialExperiment.set(t.id, experimentFolder(tc.value.experiment));
    } catch (e) {
      if (!isUserError(e)) throw e;
      const lines = e instanceof ConfigError ? e.message.split('\n').filter((l) => !/problems in the config:$/.test(l)).map((l) => l.trim()) : [(e as Error).message];
      issues.push(`trial ${t.id} (${formatOverrides(t.overrides).join(' ')}):\n    ${lines.join('\n    ')}`);
    }
  }
  if (issues.length) throw new UserError(`${issues.length} of ${trials.length} sweep trials have invalid configs (nothing was run):\n  ${issues.join('\n  ')}`);

  const parentDir = join(runsDir, name, parentRunId);
  const records = trials.map((t) => {
    const runId = `${parentRunId}.${t.id}`;
    const trialExp = trialExperiment.get(t.id) ?? experiment;
    const dir = join(runsDir, trialExp, runId);
    const rec: TrialRecord = { id: t.id, overrides: formatOverrides(t.overrides), labels: t.labels, runId, experiment: trialExp, dir, state: 'PENDING', metrics: {} };
    if (existsSync(join(dir, 'journal.jsonl'))) updateFromRun(rec);
    return rec;
  });
  return { name, spec, cfg, parentRunId, parentDir, runsDir, experiment, trials, records };
}

/** The runs/ folder of a config's experiment: its plugin name without the kind (as the runner names it). */
function experimentFolder(node: unknown): string {
  const type = (node as { type?: unknown } | undefined)?.type;
  const t = typeof type === 'string' ? type : '';
  return t.slice(t.indexOf('/') + 1);
}

function updateFromRun(rec: TrialRecord): RunSummary | undefined {
  let s: RunSummary;
  try {
    s = summarizeRun(rec.dir);
  } catch {
    return undefined;
  }
  rec.state = s.status === 'FINISHED' ? 'FINISHED' : s.status === 'FAILED' ? 'FAILED' : s.status === 'KILLED' ? 'KILLED' : 'RUNNING';
  rec.message = s.statusMessage;
  // a non-finite value is journaled as null (JSON has no NaN)
  rec.metrics = Object.fromEntries(Object.entries(s.metrics).map(([k, v]) => [k, v.value ?? NaN]));
  return s;
}

export function trialTable(plan: SweepPlan): string {
  return formatTable(
    ['trial', 'state', 'overrides'],
    plan.records.map((r) => [r.id, r.state === 'RUNNING' ? 'unfinished' : r.state, r.overrides.join(' ') || '(base config)']),
  );
}

export interface SweepOptions {
  maxParallel?: number;
  retryFailed?: boolean;
  /** the sweep command's own --set overrides (passed on to every trial) */
  sets: readonly string[];
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  cwd: string;
  env: Record<string, string | undefined>;
  /** aborting stops the sweep like SIGINT, or SIGTERM when that is the abort reason; the CLI wires both signals to it */
  signal?: AbortSignal;
}

export interface SweepOutcome {
  parentRunId: string;
  parentDir: string;
  records: TrialRecord[];
  exitCode: number;
}

/**
 * The trials this invocation runs: new ones, interrupted ones (RUNNING: their process died
 * without a final status; KILLED: stopped by a signal, with a checkpoint), and FAILED ones
 * when asked.
 */
function needsRun(r: TrialRecord, retryFailed: boolean): boolean {
  if (r.state === 'FINISHED') return false;
  if (r.state === 'FAILED') return retryFailed;
  return true;
}

export async function executeSweep(plan: SweepPlan, opts: SweepOptions): Promise<SweepOutcome> {
  const out = (s: string) => opts.stdout.write(s + '\n');
  const bin = join(packageRoot(), 'dist', 'bin', 'rass.js');
  if (!existsSync(bin)) throw new UserError(`${bin} not found: build the project first (npm run build)`);
  const maxParallel = Math.max(1, opts.maxParallel ?? availableParallelism());

  // the parent run: created once, reopened by later invocations of the same sweep
  const warn = (m: string) => opts.stderr.write(`[rass] warning: ${m}\n`);
  let parent: LocalRun;
  if (existsSync(join(plan.parentDir, 'journal.jsonl'))) {
    parent = LocalRun.reopen(plan.parentDir, { warn });
    parent.setStatus('RUNNING', 'sweep re-run');
  } else {
    parent = LocalRun.create(plan.parentDir, plan.parentRunId, { configYaml: dumpConfig(plan.cfg), overrides: plan.cfg.overrides }, { warn });
    parent.append({ type: 'run', runId: plan.parentRunId, experiment: plan.name, name: plan.name });
    parent.setStatus('RUNNING');
    parent.logParams({ sweep: plan.spec, base_config: plan.cfg.file });
    parent.setTags({ 'rass.sweep': plan.name, 'rass.sweep.trials': String(plan.records.length), 'rass.sweep.experiment': plan.experiment });
  }
  parent.attachTrackers(await startTrackers({ dir: parent.dir, runId: plan.parentRunId, experiment: plan.name, config: plan.cfg.value, env: opts.env }, warn));
  mkdirSync(join(plan.parentDir, 'artifacts', 'logs'), { recursive: true });

  const todo = plan.records.filter((r) => needsRun(r, !!opts.retryFailed));
  const skipped = plan.records.filter((r) => r.state === 'FINISHED').length;
  out(`sweep ${plan.name}: ${plan.records.length} trials (${skipped} finished earlier, ${todo.length} to run, ${maxParallel} in parallel); parent run ${plan.parentRunId}`);

  const executor = plan.spec.executor ?? { type: 'local' as const };
  const pool = executor.type === 'local'
    ? new WorkerPool({ bin, cwd: opts.cwd, env: { ...opts.env, CI: opts.env.CI ?? 'true' }, options: executor, stray: (t) => opts.stderr.write(t) })
    : undefined;
  let stopping: string | undefined;
  const onAbort = () => {
    if (stopping) return;
    const sig = opts.signal?.reason === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
    stopping = sig;
    const running = pool?.running ?? 0;
    out(`sweep ${plan.name}: stopping (${running} running trial${running === 1 ? '' : 's'} get ${sig})`);
    pool?.stopRunning(sig);
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  let done = 0;
  /** A trial as `rass run` options: a fresh run, or a resume of its interrupted run directory. */
  const trialRequest = (rec: TrialRecord): TrialRequest =>
    existsSync(join(rec.dir, 'journal.jsonl'))
      ? { resume: rec.dir, runsDir: plan.runsDir, sets: [], tags: {} }
      : {
          configFile: plan.cfg.file,
          sets: [...opts.sets, ...rec.overrides, 'sweep=~'],
          runId: rec.runId,
          parentRunId: plan.parentRunId,
          name: `${plan.name}/${rec.id}`,
          tags: { 'rass.trial_id': rec.id, 'rass.sweep': plan.name, ...Object.fromEntries(Object.entries(rec.labels).map(([k, v]) => [`rass.trial.${k}`, v])) },
        };
  const report = (rec: TrialRecord, ms: number) => {
    done++;
    const metrics = Object.entries(rec.metrics).slice(0, 4).map(([k, v]) => `${k}=${formatMetric(v)}`).join(' ');
    out(`[${done}/${todo.length}] ${rec.id} ${rec.state} ${formatDuration(ms)} ${rec.overrides.join(' ')}${metrics ? `  ${metrics}` : ''}${rec.state !== 'FINISHED' && rec.message ? `  (${rec.message})` : ''}`);
  };
  /** A trial's log (artifacts/logs/<name>) into the parent's journal, so trackers upload it (again, once it grew). */
  const journalLog = (name: string) => {
    if (!existsSync(join(plan.parentDir, 'artifacts', 'logs', name))) return;
    try {
      parent.journalArtifactFile(`logs/${name}`);
    } catch (e) {
      warn(`trial log ${name} not journaled: ${(e as Error).message}`);
    }
  };
  const runTrial = async (rec: TrialRecord, workers: WorkerPool): Promise<void> => {
    const request = trialRequest(rec);
    const logFile = join(plan.parentDir, 'artifacts', 'logs', `${rec.id}.log`);
    appendFileSync(logFile, `\n=== ${new Date().toISOString()} ${request.resume ? 'resume' : 'start'}: rass ${runArgv(request).join(' ')}\n`);
    const t0 = Date.now();
    rec.state = 'RUNNING';
    const r = await workers.run({ trialId: rec.id, logFile, request });
    updateFromRun(rec); // leaves RUNNING when the run has no journal or no final status
    const verdict = executorVerdict(rec, r, { stopping: !!stopping, logFile, executor: workers.options });
    if (verdict) {
      rec.state = verdict.state;
      rec.message = verdict.message;
      if (r.crashed && r.error) appendFileSync(logFile, `=== ${r.error}\n`);
      if (verdict.closeRun) {
        try {
          await closeTrialRun(rec.dir, verdict.state, verdict.message, opts.env, warn);
        } catch (e) {
          warn(`trial ${rec.id}: could not close its run ${rec.dir}: ${(e as Error).message}`);
        }
      }
    }
    if (!r.crashed && (r.leakedTensors ?? 0) > 0) opts.stderr.write(`[rass] warning: trial ${rec.id} left ${r.leakedTensors} tfjs tensors allocated (its worker was replaced)\n`);
    report(rec, Date.now() - t0);
    journalLog(`${rec.id}.log`);
  };

  const queue = [...todo];
  if (executor.type === 'slurm') {
    await runOnSlurm(plan, executor, todo.map((r) => ({ rec: r, args: [bin, ...runArgv(trialRequest(r))] })), maxParallel, {
      out,
      report,
      journalLog,
      stopping: () => stopping,
      onCancel: (cancelJob) => opts.signal?.addEventListener('abort', cancelJob, { once: true }),
    });
    queue.length = 0;
  }
  // the local pool: at most maxParallel trials at once; trials start in spec order
  if (pool) {
    await new Promise<void>((allDone) => {
      let active = 0;
      const next = () => {
        while (!stopping && active < maxParallel && queue.length) {
          const rec = queue.shift()!;
          active++;
          void runTrial(rec, pool).then(() => {
            active--;
            next();
          });
        }
        if (active === 0) allDone();
      };
      next();
    });
    await pool.close();
  }
  opts.signal?.removeEventListener('abort', onAbort);
  for (const r of queue) if (r.state === 'PENDING') r.state = 'KILLED';

  // trials whose live MLflow upload was cut short (this invocation or an earlier, killed one)
  await catchUpMirrors(plan.records.map((r) => r.dir), plan.runsDir, opts.env, warn);

  const failed = plan.records.filter((r) => r.state !== 'FINISHED');
  parent.logArtifact('trials.json', JSON.stringify(plan.records.map(({ dir: _d, ...r }) => r), null, 2) + '\n');
  parent.logMetrics(0, { trials_finished: plan.records.length - failed.length, trials_failed: failed.length });
  try {
    const report = buildSweepReport(plan.parentDir);
    parent.logArtifact('report.md', report.markdown);
    parent.logArtifact('report.html', report.html);
    out(`sweep ${plan.name}: report written to ${parent.artifactPath('report.md')} and ${parent.artifactPath('report.html')}`);
  } catch (e) {
    warn(`sweep report not written: ${(e as Error).message}`);
  }
  const status = stopping ? 'KILLED' : failed.length ? 'FAILED' : 'FINISHED';
  await parent.finalize(status, stopping ? `stopped by ${stopping}` : failed.length ? `${failed.length} of ${plan.records.length} trials did not finish` : undefined);
  out(formatTable(['trial', 'state', 'overrides', 'metrics'], plan.records.map((r) => [r.id, r.state, r.overrides.join(' '), Object.entries(r.metrics).slice(0, 4).map(([k, v]) => `${k}=${formatMetric(v)}`).join(' ')])));
  out(`sweep ${plan.name}: ${status}; parent run ${plan.parentDir}`);
  return { parentRunId: plan.parentRunId, parentDir: plan.parentDir, records: plan.records, exitCode: stopping ? (stopping === 'SIGTERM' ? 143 : 130) : failed.length ? 1 : 0 };
}
