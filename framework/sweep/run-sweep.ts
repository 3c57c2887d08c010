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
import { applyOverrides, buildNode, dumpConfig, formatOrigin, ConfigError, type ResolvedConfig } from '../config/index.js';
import { loadConfigPlugins, validateRunConfig } from '../runner/run-config.js';
import { PluginRegistry } from '../plugins/registry.js';
import { pluginPackage } from '../plugins/plugin-package.js';
import type { CliCommand, Executor, ExecutorTrial, TrialEnd } from '../contracts/executor.js';
import { UserError, isUserError } from '../errors.js';
import { LocalRun } from '../tracking/local-run.js';
import { findRunDirs, summarizeRun, formatDuration, formatMetric, type RunSummary } from '../tracking/run-store.js';
import { startTrackers, trackersOrWarn } from '../tracking/trackers.js';
import type { Tracker } from '../contracts/tracker.js';
import { packageRoot } from '../paths.js';
import { formatTable } from '../output/table.js';
import { expandSweep, formatOverrides, parseSweepSpec, type SweepSpec, type Trial } from './spec.js';
import { buildSweepReport } from './report.js';
import type { TrialRecord } from './trial-record.js';
export type { TrialRecord, TrialState } from './trial-record.js';
import { closeTrialRun } from './close-trial-run.js';
import { runArgv, type TrialRequest } from './trial-protocol.js';
import { builtinExecutorPlugins } from './executors/index.js';
import { pipelineName, pipelineStageIds, splitStageSets, stageConfigValues, validatePipeline, type StageSet } from '../runner/pipeline.js';

/**
 * What the sweep records for a trial when the trial's own run did not record the outcome (its
 * process died, it failed before its run existed, the executor lost it) or must be overridden
 * (stopped for its time limit: FAILED, so a plain re-run does not resume it into the same
 * timeout). `closeRun`: the sweep writes that final status into the trial's run.
 */
function executorVerdict(rec: TrialRecord, r: TrialEnd, o: { stopping: boolean; logFile: string }): { state: 'FAILED' | 'KILLED'; message: string; closeRun: boolean } | undefined {
  if (r.timedOut) return { state: 'FAILED', message: `timed out after ${r.timeLimitS} s (trial_timeout_s); --retry-failed resumes it; see ${o.logFile}`, closeRun: true };
  if (rec.state !== 'RUNNING' && rec.state !== 'PENDING') return undefined;
  const state = o.stopping ? 'KILLED' : 'FAILED';
  // the executor lost track of it (e.g. a Slurm task gone): recorded, the run left as it is
  if (r.lost !== undefined) return { state, message: r.lost, closeRun: false };
  if (!r.crashed) return { state, message: `${r.error ?? `trial exited with code ${r.exitCode}`}; see ${o.logFile}`, closeRun: false };
  const oom = r.outOfMemory ? `out of memory${r.memoryLimitMb ? ` at the ${r.memoryLimitMb} MiB heap limit` : ''}, ` : '';
  const cause = r.error ?? `trial process died without a final status (${oom}${r.signal ?? `exit code ${r.exitCode}`})`;
  return { state, message: `${cause}; see ${o.logFile}`, closeRun: true };
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
  /** the `sweep.executor` plugin (default executor/local) */
  executor: Executor;
  /** the registry the sweep's plugins were loaded into (trackers of trial runs are built with it) */
  registry: PluginRegistry;
  /** a sweep over a staged config: each trial runs the whole pipeline (a parent run with a child per stage) */
  pipeline: boolean;
}

/**
 * Load a sweep config, expand and validate every trial (before anything runs). With `warm`,
 * the executor gets ready (starts its workers) as soon as it is built, so its start-up overlaps
 * the validation of the trials; a plan that fails releases it.
 */
export async function planSweep(cfg: ResolvedConfig, registry: PluginRegistry, cwd: string, warm?: WarmUp, more: { stageSets?: readonly StageSet[]; env?: Record<string, string | undefined> } = {}): Promise<SweepPlan> {
  const raw = cfg.value.sweep;
  if (raw === undefined) throw new UserError(`${cfg.file}: no \`sweep:\` block (see configs/ablations/ for examples)`);
  const where = (p: string) => {
    const segs = p.split('.').filter(Boolean);
    return `${formatOrigin(cfg.origin(['sweep', ...segs]))} sweep${p}`.trim();
  };
  const spec = parseSweepSpec(raw, where);
  const pipeline = Array.isArray(cfg.value.stages);
  const cliStageSets = more.stageSets ?? [];
  if (pipeline) checkPipelineSweep(cfg, spec, cliStageSets);
  else if (cliStageSets.length) throw new UserError(`${cfg.file}: --set "${cliStageSets[0].text}" addresses a stage, but this config has no \`stages:\``);
  const seed = typeof cfg.value.seed === 'number' ? cfg.value.seed : 0;
  const trials = expandSweep(spec, seed);
  const name = spec.name ?? basename(cfg.file, extname(cfg.file));
  // the parent's id depends on what the sweep computes (base config + spec), not on when it ran;
  // for a pipeline that includes its stage config files (as a pipeline's own id does): an
  // edited stage file is a new sweep, not a re-run that skips trials trained with the old one
  const { sweep: _s, runs_dir: _r, tracking: _t, ...base } = cfg.value;
  const computed = pipeline ? [base, spec, await stageConfigValues(cfg, { cwd, ...(more.env ? { env: more.env } : {}) }), cliStageSets.map((x) => x.text)] : [base, spec];
  const hash = createHash('sha256').update(JSON.stringify(computed)).digest('hex').slice(0, 8);
  const parentRunId = `sweep-${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${hash}`;
  const runsDir = resolve(cwd, typeof cfg.value.runs_dir === 'string' ? cfg.value.runs_dir : 'runs');
  // a pipeline trial's run is the pipeline's parent run, in the pipeline's runs/ folder
  const experiment = pipeline ? pipelineName(cfg) : experimentFolder(cfg.value.experiment);

  await loadConfigPlugins(cfg, registry);
  const executor = await buildExecutor(spec.executor, registry, where('.executor'));
  // no more workers than trials (a resumed sweep may need fewer; the rest are closed after the run)
  if (warm) executor.warmUp?.({ cli: warm.cli ?? packageCli(), cwd, env: warm.env, maxParallel: Math.min(trials.length, warm.maxParallel ?? availableParallelism()), stray: warm.stray });
  try {
    return await planTrials();
  } catch (e) {
    await executor.dispose?.();
    throw e;
  }

  async function planTrials(): Promise<SweepPlan> {
    const trialExperiment = await checkTrialConfigs(cfg, trials, registry, cwd, cliStageSets);

    const parentDir = join(runsDir, name, parentRunId);
    const records = trials.map((t) => {
      const runId = `${parentRunId}.${t.id}`;
      const trialExp = trialExperiment.get(t.id) ?? experiment;
      const dir = join(runsDir, trialExp, runId);
      const rec: TrialRecord = { id: t.id, overrides: formatOverrides(t.overrides), labels: t.labels, runId, experiment: trialExp, dir, state: 'PENDING', metrics: {} };
      if (existsSync(join(dir, 'journal.jsonl'))) updateFromRun(rec);
      return rec;
    });
    return { name, spec, cfg, parentRunId, parentDir, runsDir, experiment, trials, records, executor, registry, pipeline };
  }
}

/**
 * Every trial's config, validated as its run will see it (nothing runs while one is invalid);
 * returns each trial's runs/ folder (its experiment's, or its pipeline's), since a variant may
 * switch the experiment type.
 */
async function checkTrialConfigs(cfg: ResolvedConfig, trials: readonly Trial[], registry: PluginRegistry, cwd: string, cliStageSets: readonly StageSet[]): Promise<Map<string, string>> {
  const pipeline = Array.isArray(cfg.value.stages);
  const issues: string[] = [];
  const trialExperiment = new Map<string, string>();
  for (const t of trials) {
    try {
      if (pipeline) {
        // what the trial's `rass run` does: pipeline-level overrides on the pipeline, `stages.<id>.` ones on that stage
        const split = splitStageSets(formatOverrides(t.overrides));
        const tc = applyOverrides(cfg, [...split.pipeline, 'sweep=~']);
        await validatePipeline(tc, registry, { cwd, stageSets: [...cliStageSets, ...split.stages] });
        trialExperiment.set(t.id, pipelineName(tc));
      } else {
        const tc = applyOverrides(cfg, [...formatOverrides(t.overrides), 'sweep=~']);
        validateRunConfig(tc, registry);
        trialExperiment.set(t.id, experimentFolder(tc.value.experiment));
      }
    } catch (e) {
      if (!isUserError(e)) throw e;
      const lines = e instanceof ConfigError ? e.message.split('\n').filter((l) => !/problems in the config:$/.test(l)).map((l) => l.trim()) : [(e as Error).message];
      issues.push(`trial ${t.id} (${formatOverrides(t.overrides).join(' ')}):\n    ${lines.join('\n    ')}`);
    }
  }
  if (issues.length) throw new UserError(`${issues.length} of ${trials.length} sweep trials have invalid configs (nothing was run):\n  ${issues.join('\n  ')}`);
  return trialExperiment;
}

/**
 * `rass validate` of a staged config with a `sweep:` block: the spec, its axes and metric
 * against the pipeline's stages, and every trial's pipeline (as `rass sweep --dry-run` checks
 * them, without an executor). Returns the trial count.
 */
export async function validatePipelineSweep(cfg: ResolvedConfig, registry: PluginRegistry, cwd: string): Promise<number> {
  const where = (p: string) => `${formatOrigin(cfg.origin(['sweep', ...p.split('.').filter(Boolean)]))} sweep${p}`.trim();
  const spec = parseSweepSpec(cfg.value.sweep, where);
  checkPipelineSweep(cfg, spec, []);
  const trials = expandSweep(spec, typeof cfg.value.seed === 'number' ? cfg.value.seed : 0);
  await checkTrialConfigs(cfg, trials, registry, cwd, []);
  return trials.length;
}

/**
 * A sweep over a staged config, checked before any trial is expanded: every axis that names a
 * stage (`stages.<id>.<key>`) names one of the pipeline's stages, and the metric is a stage
 * metric as the pipeline's summary names it (`<stage id>/<metric>`), which the trial's
 * pipeline run records (only its `summary:` when it has one).
 */
function checkPipelineSweep(cfg: ResolvedConfig, spec: SweepSpec, cliStageSets: readonly StageSet[]): void {
  const ids = pipelineStageIds(cfg);
  const at = (path: (string | number)[]) => formatOrigin(cfg.origin(path)) || cfg.file;
  const axes: [(string | number)[], string][] = [];
  for (const k of Object.keys(spec.grid ?? {})) axes.push([['sweep', 'grid', k], k]);
  (spec.zip ?? []).forEach((g, i) => Object.keys(g).forEach((k) => axes.push([['sweep', 'zip', i, k], k])));
  for (const [group, vs] of Object.entries(spec.variants ?? {})) for (const [vn, v] of Object.entries(vs)) for (const k of Object.keys(v)) axes.push([['sweep', 'variants', group, vn, k], k]);
  for (const k of Object.keys(spec.random?.params ?? {})) axes.push([['sweep', 'random', 'params', k], k]);
  for (const [path, key] of axes) {
    let stages: StageSet[];
    try {
      stages = splitStageSets([`${key}=0`]).stages;
    } catch (e) {
      throw new UserError(`${at(path)} sweep axis "${key}": ${(e as Error).message.replace(/^--set "[^"]*": /, '')}`, { cause: e });
    }
    for (const x of stages) {
      if (!ids.includes(x.id)) throw new UserError(`${at(path)} sweep axis "${key}": the pipeline has no stage "${x.id}" (its stages: ${ids.join(', ')}); a stage's key is addressed as stages.<stage id>.<key>, e.g. stages.${ids[0]}.experiment.steps`);
    }
  }
  for (const x of cliStageSets) if (!ids.includes(x.id)) throw new UserError(`${cfg.file}: --set "${x.text}" names stage "${x.id}", but the pipeline's stages are ${ids.join(', ')}`);
  const metric = spec.metric?.name;
  if (metric === undefined) return;
  const summary = (cfg.value as { summary?: unknown }).summary;
  if (!ids.includes(metric.split('/')[0])) throw new UserError(`${at(['sweep', 'metric', 'name'])} sweep.metric.name "${metric}": a pipeline trial reports stage metrics as <stage id>/<metric>, as its summary names them (stages: ${ids.join(', ')}; e.g. ${ids[0]}/val/loss)`);
  if (Array.isArray(summary) && !summary.includes(metric)) throw new UserError(`${at(['sweep', 'metric', 'name'])} sweep.metric.name "${metric}": not in the pipeline's summary (${summary.join(', ')}), and a pipeline run records only its summary metrics; add it there`);
}

/** What planSweep needs to start the executor early (the same values executeSweep gets). */
export interface WarmUp {
  cli?: CliCommand;
  env: Record<string, string | undefined>;
  maxParallel?: number;
  stray: (text: string) => void;
}

/**
 * The executor plugin of a `sweep.executor` node; `type: local` / `type: slurm` (the form
 * before executors were plugins) name executor/local and executor/slurm.
 */
async function buildExecutor(node: SweepSpec['executor'], registry: PluginRegistry, where: string): Promise<Executor> {
  const { type, ...options } = node ?? { type: 'executor/local' };
  const full = type.includes('/') ? type : `executor/${type}`;
  const name = full.slice('executor/'.length);
  let reg = registry;
  if (!registry.has('executor', name) && builtinExecutorPlugins.some((p) => p.name === name)) {
    reg = new PluginRegistry();
    // a registry built without the framework's own plugins (library use) still gets them
    reg.loadPackage(pluginPackage({ name: 'rass/framework', plugins: builtinExecutorPlugins }));
  }
  try {
    return await buildNode<Executor>({ type: full, ...options }, reg, { path: 'sweep.executor' });
  } catch (e) {
    if (!isUserError(e)) throw e;
    throw new UserError(`${where}: ${(e as Error).message.replace(/^problems in the config:\s*/u, '')}`, { cause: e });
  }
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
  /** the CLI that trials (workers, Slurm tasks) run: the one running this sweep; default dist/bin/rass.js of this package */
  cli?: CliCommand;
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

/** The CLI of this package (dist/bin/rass.js): for callers that do not say which CLI runs trials. */
function packageCli(): CliCommand {
  const bin = join(packageRoot(), 'dist', 'bin', 'rass.js');
  if (!existsSync(bin)) throw new UserError(`${bin} not found: build the project first (npm run build)`);
  return { command: process.execPath, args: [bin] };
}

interface SweepIo {
  out: (line: string) => void;
  warn: (message: string) => void;
}

/**
 * Run a planned sweep, in phases: open the parent run, pick the trials to run, run them on
 * the executor (each trial's end is booked by a TrialBook), let the trackers catch up, and
 * close the parent run with the table, the report and the sweep's status.
 */
export async function executeSweep(plan: SweepPlan, opts: SweepOptions): Promise<SweepOutcome> {
  const io: SweepIo = { out: (s) => opts.stdout.write(s + '\n'), warn: (m) => opts.stderr.write(`[rass] warning: ${m}\n`) };
  const cli = opts.cli ?? packageCli();
  const maxParallel = Math.max(1, opts.maxParallel ?? availableParallelism());
  let opened: Awaited<ReturnType<typeof openParentRun>>;
  try {
    opened = await openParentRun(plan, opts.env, io.warn);
  } catch (e) {
    // workers started while planning would keep this process alive waiting for trials
    await plan.executor.dispose?.();
    throw e;
  }
  const { parent, trackers } = opened;
  const todo = plan.records.filter((r) => needsRun(r, !!opts.retryFailed));
  const skipped = plan.records.filter((r) => r.state === 'FINISHED').length;
  io.out(`sweep ${plan.name}: ${plan.records.length} trials (${skipped} finished earlier, ${todo.length} to run, ${maxParallel} in parallel); parent run ${plan.parentRunId}`);

  const stop = watchStop(plan, opts.signal, io.out);
  const book = new TrialBook(plan, parent, { env: opts.env, sets: opts.sets, stderr: opts.stderr, io, total: todo.length, stopping: () => stop.reason, retryFailed: !!opts.retryFailed });
  await plan.executor.run(todo.map((rec) => book.trial(rec)), {
    cli,
    cwd: opts.cwd,
    env: opts.env,
    maxParallel,
    sweepName: plan.name,
    parentDir: plan.parentDir,
    logDir: book.logDir,
    out: io.out,
    stray: (t) => opts.stderr.write(t),
    stopping: () => stop.reason,
    started: (t) => book.started(t),
    ended: (t, end) => book.ended(t, end),
  });
  stop.dispose();
  for (const r of todo) if (r.state === 'PENDING') r.state = 'KILLED'; // never started: the sweep was stopped

  await catchUpTrackers(trackers, plan, opts.env, io.warn);
  return closeSweep(plan, parent, stop.reason, io);
}

/** Phase 1: the parent run, created once and reopened by later invocations of the same sweep, with the sweep config's trackers. */
async function openParentRun(plan: SweepPlan, env: Record<string, string | undefined>, warn: (m: string) => void): Promise<{ parent: LocalRun; trackers: Tracker[] }> {
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
  const trackers = await trackersOrWarn(plan.cfg.value, plan.registry, warn);
  parent.attachTrackers(await startTrackers(trackers, { dir: parent.dir, runId: plan.parentRunId, experiment: plan.name, config: plan.cfg.value, env }, warn));
  mkdirSync(join(plan.parentDir, 'artifacts', 'logs'), { recursive: true });
  return { parent, trackers };
}

/** SIGINT/SIGTERM (the abort signal) stops the sweep once: the executor stops its running trials and starts no more. */
function watchStop(plan: SweepPlan, signal: AbortSignal | undefined, out: (s: string) => void): { readonly reason: 'SIGINT' | 'SIGTERM' | undefined; dispose(): void } {
  let reason: 'SIGINT' | 'SIGTERM' | undefined;
  const onAbort = () => {
    if (reason) return;
    reason = signal?.reason === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
    const running = plan.executor.running;
    out(`sweep ${plan.name}: stopping (${running} running trial${running === 1 ? '' : 's'} get ${reason})`);
    plan.executor.stop(reason);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort(); // a Ctrl-C while the parent run opened: no 'abort' event comes again
  return {
    get reason() {
      return reason;
    },
    dispose: () => signal?.removeEventListener('abort', onAbort),
  };
}

/**
 * The sweep's bookkeeping of the trials the executor runs: what each trial is (its `rass run`
 * request and log file), and, when one ends, its state from its own run (or the executor's
 * verdict when the run could not record it), the progress line, and its log journaled.
 */
class TrialBook {
  readonly logDir: string;
  private readonly byId: Map<string, TrialRecord>;
  private readonly startedAt = new Map<string, number>();
  private done = 0;

  constructor(
    private readonly plan: SweepPlan,
    private readonly parent: LocalRun,
    private readonly o: { env: Record<string, string | undefined>; sets: readonly string[]; stderr: NodeJS.WritableStream; io: SweepIo; total: number; stopping: () => string | undefined; retryFailed?: boolean },
  ) {
    this.logDir = join(plan.parentDir, 'artifacts', 'logs');
    this.byId = new Map(plan.records.map((r) => [r.id, r]));
  }

  /** A trial as `rass run` options: a fresh run, or a resume of its interrupted run directory. */
  trial(rec: TrialRecord): ExecutorTrial {
    const { plan } = this;
    const fresh: TrialRequest = {
      configFile: plan.cfg.file,
      sets: [...this.o.sets, ...rec.overrides, 'sweep=~'],
      runId: rec.runId,
      parentRunId: plan.parentRunId,
      name: `${plan.name}/${rec.id}`,
      tags: { 'rass.trial_id': rec.id, 'rass.sweep': plan.name, ...Object.fromEntries(Object.entries(rec.labels).map(([k, v]) => [`rass.trial.${k}`, v])) },
    };
    // A pipeline trial is always `rass run PIPELINE` with its fixed run id: that reopens the
    // trial's pipeline run, skips its finished stages and resumes the interrupted one (a
    // pipeline's parent run is no single run `--resume` could continue).
    const request: TrialRequest = plan.pipeline
      ? { ...fresh, ...(this.o.retryFailed ? { retryFailed: true } : {}) }
      : existsSync(join(rec.dir, 'journal.jsonl'))
        ? { resume: rec.dir, runsDir: plan.runsDir, sets: [], tags: {} }
        : fresh;
    return { id: rec.id, request, argv: runArgv(request), logFile: join(this.logDir, `${rec.id}.log`), runDir: rec.dir };
  }

  started(t: ExecutorTrial): void {
    appendFileSync(t.logFile, `\n=== ${new Date().toISOString()} ${t.request.resume ? 'resume' : 'start'}: rass ${t.argv.join(' ')}\n`);
    this.startedAt.set(t.id, Date.now());
    this.byId.get(t.id)!.state = 'RUNNING';
  }

  async ended(t: ExecutorTrial, end: TrialEnd): Promise<void> {
    const rec = this.byId.get(t.id)!;
    const { warn } = this.o.io;
    const logFile = end.logFile ?? t.logFile;
    updateFromRun(rec); // leaves RUNNING when the run has no journal or no final status
    const verdict = executorVerdict(rec, end, { stopping: !!this.o.stopping(), logFile });
    if (verdict) {
      rec.state = verdict.state;
      rec.message = verdict.message;
      if (end.crashed && end.error) appendFileSync(logFile, `=== ${end.error}\n`);
      if (verdict.closeRun) {
        try {
          await closeTrialRun(rec.dir, verdict.state, verdict.message, this.o.env, warn, this.plan.registry);
        } catch (e) {
          warn(`trial ${rec.id}: could not close its run ${rec.dir}: ${(e as Error).message}`);
        }
      }
    }
    if (!end.crashed && (end.leakedTensors ?? 0) > 0) this.o.stderr.write(`[rass] warning: trial ${rec.id} left ${end.leakedTensors} tfjs tensors allocated (its worker was replaced)\n`);
    this.report(rec, Date.now() - (this.startedAt.get(t.id) ?? Date.now()));
    this.journalLog(logFile);
  }

  private report(rec: TrialRecord, ms: number): void {
    this.done++;
    const metrics = Object.entries(rec.metrics).slice(0, 4).map(([k, v]) => `${k}=${formatMetric(v)}`).join(' ');
    this.o.io.out(`[${this.done}/${this.o.total}] ${rec.id} ${rec.state} ${formatDuration(ms)} ${rec.overrides.join(' ')}${metrics ? `  ${metrics}` : ''}${rec.state !== 'FINISHED' && rec.message ? `  (${rec.message})` : ''}`);
  }

  /** A trial's log (artifacts/logs/<name>) into the parent's journal, so trackers upload it (again, once it grew). */
  private journalLog(file: string): void {
    if (!existsSync(file)) return;
    try {
      this.parent.journalArtifactFile(`logs/${basename(file)}`);
    } catch (e) {
      this.o.io.warn(`trial log ${file} not journaled: ${(e as Error).message}`);
    }
  }
}

/** Phase 5: trials whose live mirror was cut short (this invocation or an earlier, killed one): each tracker finishes its own. */
async function catchUpTrackers(trackers: readonly Tracker[], plan: SweepPlan, env: Record<string, string | undefined>, warn: (m: string) => void): Promise<void> {
  const dirs = plan.records.map((r) => r.dir);
  // a pipeline trial's stage runs (<trial run id>.<stage id>) are the sweep's runs too
  if (plan.pipeline) {
    const ids = new Set(plan.records.map((r) => r.runId));
    for (const d of findRunDirs(plan.runsDir)) if (ids.has(basename(d).slice(0, basename(d).lastIndexOf('.')))) dirs.push(d);
  }
  for (const t of trackers) {
    try {
      await t.catchUp?.(dirs, { runsRoot: plan.runsDir, env, warn });
    } catch (e) {
      warn(`tracker catch-up failed: ${(e as Error).message}`);
    }
  }
}

/** Phase 6: trials.json, the summary metrics and the report into the parent run, its final status, the table. */
async function closeSweep(plan: SweepPlan, parent: LocalRun, stopping: 'SIGINT' | 'SIGTERM' | undefined, io: SweepIo): Promise<SweepOutcome> {
  const failed = plan.records.filter((r) => r.state !== 'FINISHED');
  parent.logArtifact('trials.json', JSON.stringify(plan.records.map(({ dir: _d, ...r }) => r), null, 2) + '\n');
  parent.logMetrics(0, { trials_finished: plan.records.length - failed.length, trials_failed: failed.length });
  try {
    const report = buildSweepReport(plan.parentDir);
    parent.logArtifact('report.md', report.markdown);
    parent.logArtifact('report.html', report.html);
    io.out(`sweep ${plan.name}: report written to ${parent.artifactPath('report.md')} and ${parent.artifactPath('report.html')}`);
  } catch (e) {
    io.warn(`sweep report not written: ${(e as Error).message}`);
  }
  const status = stopping ? 'KILLED' : failed.length ? 'FAILED' : 'FINISHED';
  await parent.finalize(status, stopping ? `stopped by ${stopping}` : failed.length ? `${failed.length} of ${plan.records.length} trials did not finish` : undefined);
  io.out(formatTable(['trial', 'state', 'overrides', 'metrics'], plan.records.map((r) => [r.id, r.state, r.overrides.join(' '), Object.entries(r.metrics).slice(0, 4).map(([k, v]) => `${k}=${formatMetric(v)}`).join(' ')])));
  io.out(`sweep ${plan.name}: ${status}; parent run ${plan.parentDir}`);
  return { parentRunId: plan.parentRunId, parentDir: plan.parentDir, records: plan.records, exitCode: stopping ? (stopping === 'SIGTERM' ? 143 : 130) : failed.length ? 1 : 0 };
}
