/**
 * The runner: one config in, one recorded run out.
 *
 *   resolve config -> load its plugins -> validate -> build the experiment ->
 *   create runs/<experiment>/<run-id>/ (config.yaml, overrides.json, journal, lock) ->
 *   experiment.run(ctx) -> final status, trackers closed, lock released.
 *
 * Bad input fails before the run directory exists, with one message. Once the run exists,
 * every outcome is journaled: FINISHED, FAILED (with the error message) or KILLED
 * (SIGINT/SIGTERM). `resume` reopens a run directory instead of creating one.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { buildComponent, dumpConfig, formatOrigin, loadConfig } from '../config/index.js';
import { loadConfigPlugins, validateRunConfig } from './run-config.js';
import type { RunConfigValue } from './run-schema.js';
import type { ResolvedConfig } from '../config/index.js';
import type { Experiment, RunContext } from '../contracts/experiment.js';
import { createProgress } from '../output/progress.js';
import { formatTable } from '../output/table.js';
import { initBackend, backendRunTags, type BackendName, type OneDnnChoice } from '../engine/backend.js';
import { UserError, isUserError } from '../errors.js';
import { NonFiniteMetricError, nanGuard } from './nan-guard.js';
import { packageRoot } from '../paths.js';
import type { ComponentNode, Logger } from '../plugins/context.js';
import type { PluginRegistry } from '../plugins/registry.js';
import type { PluginKind } from '../plugins/kinds.js';
import type { RunStatus } from '../tracking/events.js';
import { LocalRun } from '../tracking/local-run.js';
import { ensureWritableDir } from '../tracking/ensure-dir.js';
import { newRunId } from '../tracking/run-id.js';
import { formatDuration, formatMetric, resolveRunDir, summarizeRun } from '../tracking/run-store.js';
import type { RunTracker, TrackerFactory, TrackerRunInfo } from '../tracking/tracker.js';
import { buildTrackers } from '../tracking/trackers.js';
import { Interruptions } from './interruptions.js';

export interface RunnerOptions {
  registry: PluginRegistry;
  /** the config file (required unless resuming) */
  configFile?: string;
  /** `--set key=value` overrides */
  sets?: readonly string[];
  /** resume this run (id, id prefix or directory) instead of starting a new one */
  resume?: string;
  /** run name (default: the config's `name`, else the experiment plugin's name) */
  name?: string;
  /** where to look up `resume` (default: `runs`) */
  runsDir?: string;
  /** resume even a FINISHED run (it is reopened and runs again from its latest checkpoint) */
  force?: boolean;
  cwd: string;
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** install SIGINT/SIGTERM handlers (the CLI does; in-process tests don't) */
  handleSignals?: boolean;
  /**
   * while the experiment runs, treat an uncaught exception or unhandled rejection (a stray timer
   * or event handler) as the experiment's error: the run ends FAILED with its message. Default:
   * `handleSignals` (the CLI, which owns the process).
   */
  handleUncaught?: boolean;
  trackerFactories?: readonly TrackerFactory[];
  /** an external abort (tests, trial workers): behaves like SIGTERM, or SIGINT when that is the abort reason */
  signal?: AbortSignal;
  /** how long an experiment may take to stop after a signal before the run is closed anyway */
  killGraceMs?: number;
  /** a fixed run id (sweeps derive trial run ids from trial ids); default: a new time-sortable id */
  runId?: string;
  /** local run id of the parent run (a sweep), journaled so trackers nest the run under it */
  parentRunId?: string;
  /** extra tags (sweeps tag trials with their trial id and labels) */
  tags?: Record<string, string>;
}

export interface RunOutcome {
  runId: string;
  dir: string;
  status: RunStatus;
  /** process exit code: 0 finished, 1 failed, 2 failed on bad input, 130/143 killed */
  exitCode: number;
  /** the run failed on an uncaught exception / unhandled rejection: the experiment may still hold the event loop */
  stray?: boolean;
  metrics: Record<string, number>;
}

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

/** One run, phase by phase; each phase is a named function below. */
export async function runExperiment(opts: RunnerOptions): Promise<RunOutcome> {
  const log = makeLogger(opts.stderr);
  const sets = [...(opts.sets ?? [])];
  const resolved = await resolveRunConfig(opts, sets);
  const built = await buildExperiment(opts, resolved, log);
  const run = openRunDir(opts, resolved, built, sets, log);
  await attachTrackers(opts, run, resolved.value, built.experimentName);
  recordAttempt(opts, run, resolved, built);
  const interruptions = new Interruptions(
    { handleSignals: opts.handleSignals, handleUncaught: opts.handleUncaught ?? opts.handleSignals ?? false, signal: opts.signal, killGraceMs: opts.killGraceMs },
    run,
    built.controller,
    log,
  );
  const guard = metricGuard(run, resolved.value);
  const ctx = runContext(opts, run, resolved, built, guard, log);
  const ended = await execute(built.experiment, ctx, run, interruptions, guard, opts);
  printSummary(run, ended.message, opts.stdout);
  return { runId: run.runId, dir: run.dir, status: ended.status, exitCode: ended.exitCode, metrics: ended.metrics, ...(interruptions.strayError !== undefined ? { stray: true } : {}) };
}

interface ResolvedRun {
  cfg: ResolvedConfig;
  value: RunConfigValue;
  file: string;
  /** the resolved config as saved with the run (config.yaml and its artifact) */
  configYaml: string;
  /** what was computed, independent of where it is stored or tracked */
  configHash: string;
  /** the run directory being resumed, if any */
  resumeDir?: string;
}

/** 1. The config: from the file, or the resumed run's own resolved copy; plugins loaded, validated. */
async function resolveRunConfig(opts: RunnerOptions, sets: string[]): Promise<ResolvedRun> {
  let resumeDir: string | undefined;
  let file: string;
  if (opts.resume !== undefined) {
    if (opts.configFile) throw new UserError('rass run --resume continues a run with its recorded config; do not pass a config file too');
    if (sets.length) throw new UserError('rass run --resume continues a run with its recorded config; --set is not allowed (start a new run to change it)');
    resumeDir = resolveRunDir(resolve(opts.cwd, opts.runsDir ?? 'runs'), opts.resume, opts.cwd);
    // reopening a finished run would append a second "finish" to a record that was complete
    const before = summarizeRun(resumeDir);
    if (before.finished && !opts.force) {
      throw new UserError(`run ${before.runId} is FINISHED (${formatDuration(before.durationMs)} of running time); --resume continues an interrupted run. Start a new run, or pass --force to reopen this one`);
    }
    file = join(resumeDir, 'config.yaml');
  } else {
    if (!opts.configFile) throw new UserError('rass run: which config? pass a config file, e.g. rass run configs/quickstart.yaml');
    file = resolve(opts.cwd, opts.configFile);
  }
  const cfg = await loadConfig(file, { sets, env: opts.env, cwd: opts.cwd });
  if (resumeDir) restoreOrigins(cfg, resumeDir);
  await loadConfigPlugins(cfg, opts.registry);
  validateRunConfig(cfg, opts.registry);
  const value = cfg.value as RunConfigValue;
  return { cfg, value, file, configYaml: configYamlOf(cfg), configHash: configHashOf(value), ...(resumeDir ? { resumeDir } : {}) };
}

interface BuiltExperiment {
  experiment: Experiment;
  experimentName: string;
  runName: string;
  backendTags: Record<string, string>;
  /** aborted on a signal or a stray error; the experiment sees it as ctx.signal */
  controller: AbortController;
  /** what plugins find in ctx.services (the run is added once it exists) */
  services: Record<string, unknown>;
  build: <T>(node: ComponentNode, o?: { expectKind?: PluginKind; path?: string }) => Promise<T>;
}

/** 2. The backend, then the experiment: bad options fail here, before any run directory exists. */
async function buildExperiment(opts: RunnerOptions, r: ResolvedRun, log: Logger): Promise<BuiltExperiment> {
  const { cfg, value, file } = r;
  const backendTags = await selectBackend(value.backend ?? 'auto', value.threads ?? 0, value.onednn ?? 'auto', log);
  const expNode = value.experiment;
  const experimentName = expNode.type.slice(expNode.type.indexOf('/') + 1);
  const controller = new AbortController();
  // runsDir: plugins that read earlier runs (`finishedRun`) look them up in this run's store
  const services: Record<string, unknown> = { signal: controller.signal, runsDir: resolve(opts.cwd, value.runs_dir ?? 'runs'), cwd: opts.cwd };
  const build = <T>(node: ComponentNode, o: { expectKind?: PluginKind; path?: string } = {}): Promise<T> =>
    buildComponent<T>(node, opts.registry, { seed: value.seed ?? 0, log, services, cfg, cwd: opts.cwd, ...o });
  const experiment = await build<Experiment>(expNode, { path: 'experiment', expectKind: 'experiment' });
  if (!experiment || typeof (experiment as Partial<Experiment>).run !== 'function') {
    throw new UserError(`${file}: experiment: plugin ${expNode.type} did not build an experiment (an object with run(ctx))`);
  }
  return { experiment, experimentName, runName: opts.name ?? value.name ?? experimentName, backendTags, controller, services, build };
}

/** The hash identifies what was computed: where it is stored or tracked does not change it. */
function configHashOf(value: RunConfigValue): string {
  const { runs_dir: _rd, tracking: _tr, fail_on_nan: _fn, ...hashed } = value;
  return createHash('sha256').update(JSON.stringify(sortKeys(hashed))).digest('hex').slice(0, 16);
}

/** 3. The run directory: created (config.yaml, overrides, journal, lock) or reopened for a resume. */
function openRunDir(opts: RunnerOptions, r: ResolvedRun, b: BuiltExperiment, sets: string[], log: Logger): LocalRun {
  const warn = (m: string) => log.warn(m);
  let run: LocalRun;
  if (r.resumeDir) {
    run = LocalRun.reopen(r.resumeDir, { warn });
    run.setStatus('RUNNING', 'resumed');
  } else {
    const runId = opts.runId ?? newRunId();
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(runId)) throw new UserError(`run id "${runId}": use letters, digits, '.', '_' and '-'`);
    const runsRoot = resolve(opts.cwd, r.value.runs_dir ?? 'runs');
    const where = formatOrigin(r.cfg.origin(['runs_dir']));
    ensureWritableDir(runsRoot, `runs_dir${r.value.runs_dir !== undefined && where ? ` (${where})` : ''}`);
    const dir = join(runsRoot, b.experimentName, runId);
    run = LocalRun.create(dir, runId, { configYaml: r.configYaml, overrides: sets, extra: { [ORIGINS_FILE]: originsJson(r.cfg, opts.cwd) } }, { warn });
    run.append({ type: 'run', runId, experiment: b.experimentName, name: b.runName, configHash: r.configHash, ...(opts.parentRunId ? { parentRunId: opts.parentRunId } : {}) });
    run.setStatus('RUNNING');
  }
  b.services.run = run;
  log.info(`run ${run.runId}${r.resumeDir ? ' (resumed)' : ''}: ${run.dir}`);
  return run;
}

/**
 * Where each config value came from, saved with the run: a resume loads the run's own
 * config.yaml, and without these a relative path in it (a dataset root, a tags file) would
 * resolve against the run directory instead of the file that wrote it (or, for a `--set`, the
 * directory the run was started in).
 */
const ORIGINS_FILE = 'config-origins.json';

function originsJson(cfg: ResolvedConfig, cwd: string): string {
  const entries = cfg.origins.entries().map(({ path, origin }) => ({ path, origin: origin.set !== undefined ? { ...origin, cwd } : origin }));
  return JSON.stringify(entries) + '\n';
}

function restoreOrigins(cfg: ResolvedConfig, runDir: string): void {
  const f = join(runDir, ORIGINS_FILE);
  if (!existsSync(f)) return; // a run recorded before origins were saved: paths resolve against its directory
  let entries: { path: (string | number)[]; origin: Record<string, unknown> }[];
  try {
    entries = JSON.parse(readFileSync(f, 'utf8'));
  } catch (e) {
    throw new UserError(`${f}: unreadable (${(e as Error).message}); the run's config origins are needed to resolve its relative paths`);
  }
  for (const { path, origin } of entries) cfg.origins.set(path, origin);
}

function configYamlOf(cfg: ResolvedConfig): string {
  return dumpConfig(withAbsolutePlugins(cfg), { origins: false });
}

/**
 * 3b. The tracker plugins the config selects (`tracking.trackers`, default: MLflow when a URI is
 * set) mirror the journal. A tracker that fails to start is a warning, not a failed run; bad
 * tracker options (a UserError) fail the run with their message.
 */
async function attachTrackers(opts: RunnerOptions, run: LocalRun, value: RunConfigValue, experimentName: string): Promise<void> {
  const trackers: RunTracker[] = [];
  let factories: readonly TrackerFactory[];
  try {
    factories = opts.trackerFactories ?? (await buildTrackers(value as Record<string, unknown>, opts.registry)).map((t) => (info: TrackerRunInfo) => t.start(info));
  } catch (e) {
    await run.finalize('FAILED', (e as Error).message);
    throw e;
  }
  for (const f of factories) {
    try {
      const t = await f({ dir: run.dir, runId: run.runId, experiment: experimentName, config: value as Record<string, unknown>, env: opts.env });
      if (t) trackers.push(t);
    } catch (e) {
      if (isUserError(e)) {
        await run.finalize('FAILED', (e as Error).message);
        throw e;
      }
      opts.stderr.write(`warning: tracker failed to start: ${(e as Error).message}\n`);
    }
  }
  run.attachTrackers(trackers);
}

/**
 * 3c. Params, the config artifact and tags on a new run; on every attempt (the first start and
 * each resume) where it ran: a resume may land on another host or backend, and the run-level
 * tags describe the latest attempt.
 */
function recordAttempt(opts: RunnerOptions, run: LocalRun, r: ResolvedRun, b: BuiltExperiment): void {
  const attempt = summarizeRun(run.dir).attempts.length;
  const attemptTags = { 'rass.attempts': String(attempt), [`rass.attempt.${attempt}.backend`]: b.backendTags['rass.backend'] ?? 'unknown', [`rass.attempt.${attempt}.host`]: hostname() };
  if (r.resumeDir) {
    run.setTags({ ...b.backendTags, 'rass.host': hostname(), ...attemptTags });
    return;
  }
  run.logParams(paramsOf(r.value));
  run.logArtifact('config.yaml', r.configYaml);
  run.setTags({
    ...(r.value.tags ?? {}),
    ...(opts.tags ?? {}),
    'rass.config_hash': r.configHash,
    ...b.backendTags,
    'rass.version': rassVersion(),
    'rass.host': hostname(),
    ...gitTags(opts.cwd),
    ...attemptTags,
  });
}

interface MetricGuard {
  logMetrics: (step: number, values: Record<string, number>) => void;
  /** the first NaN-policy violation, kept so an experiment that swallows it still ends FAILED */
  error(): NonFiniteMetricError | undefined;
}

/** The NaN policy, checked after the values are journaled; nothing can be logged past a violation. */
function metricGuard(run: LocalRun, value: RunConfigValue): MetricGuard {
  const checkMetrics = nanGuard(value.fail_on_nan);
  let nanError: NonFiniteMetricError | undefined;
  return {
    logMetrics: (step, values) => {
      run.logMetrics(step, values);
      if (nanError) throw nanError;
      try {
        checkMetrics(step, values);
      } catch (e) {
        nanError = e as NonFiniteMetricError;
        throw e;
      }
    },
    error: () => nanError,
  };
}

/** 4. What the experiment gets: its run's folders, seed, signal, logging, checkpoints, build. */
function runContext(opts: RunnerOptions, run: LocalRun, r: ResolvedRun, b: BuiltExperiment, guard: MetricGuard, log: Logger): RunContext {
  const latest = r.resumeDir ? run.latestCheckpoint() : undefined;
  return {
    runId: run.runId,
    runDir: run.dir,
    artifactsDir: run.artifactsDir,
    checkpointsDir: run.checkpointsDir,
    seed: r.value.seed ?? 0,
    signal: b.controller.signal,
    log,
    ...(r.resumeDir ? { resume: latest ? { checkpointDir: latest } : {} } : {}),
    logParams: (p) => run.logParams(p),
    logMetrics: guard.logMetrics,
    setTags: (t) => run.setTags(t),
    logArtifact: async (rel, data) => run.logArtifact(rel, data),
    saveCheckpoint: (name, write) => run.saveCheckpoint(name, write),
    progress: (label, total) => createProgress(label, total, { stream: opts.stderr as never }),
    build: (node, o) => b.build(node, { ...(o?.path ? { path: o.path } : {}), ...(o?.expectKind ? { expectKind: o.expectKind } : {}) }),
  };
}

interface RunEnd {
  status: RunStatus;
  message?: string;
  exitCode: number;
  metrics: Record<string, number>;
}

/**
 * 5. Run the experiment to its end: FINISHED with its final metrics (journaled once), FAILED
 * with the cause (a NaN stop, a stray error, bad input, a bug with its stack) or KILLED by a
 * signal. The run is finalised whatever happens.
 */
async function execute(experiment: Experiment, ctx: RunContext, run: LocalRun, irq: Interruptions, guard: MetricGuard, opts: RunnerOptions): Promise<RunEnd> {
  const end: RunEnd = { status: 'FINISHED', exitCode: 0, metrics: {} };
  try {
    const running = experiment.run(ctx);
    // after a stray error wins the race, the experiment's own later rejection is expected
    if (irq.handlesUncaught) Promise.resolve(running).catch(() => {});
    const result = await Promise.race([running, irq.killed.then(() => 'killed' as const), irq.stray]);
    if (irq.strayError !== undefined) throw irq.strayError;
    if (irq.killedBy) throw new Error(`run killed by ${irq.killedBy}`);
    if (guard.error()) throw guard.error();
    if (result && typeof result === 'object') {
      end.metrics = Object.fromEntries(Object.entries(result).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
      const journaled = summarizeRun(run.dir).metrics;
      const lastStep = Math.max(0, ...Object.values(journaled).map((m) => m.step));
      // the experiment usually journaled its final evaluation itself at the last step: only
      // values it did not journal there are added, so each appears once
      const missing = Object.fromEntries(Object.entries(end.metrics).filter(([k, v]) => !(journaled[k]?.step === lastStep && Object.is(journaled[k].value, v))));
      if (Object.keys(missing).length) guard.logMetrics(lastStep, missing);
    }
  } catch (e) {
    if (irq.killedBy) {
      end.status = 'KILLED';
      end.message = `killed by ${irq.killedBy}`;
      end.exitCode = SIGNAL_EXIT[irq.killedBy] ?? 143;
    } else {
      end.status = 'FAILED';
      // a NaN stops the run even when the experiment wrapped or replaced the guard's error; a
      // stray error is the cause even when the experiment then failed on the abort it caused
      const nanError = guard.error();
      const err = nanError ?? irq.strayError ?? e;
      end.message = err instanceof Error ? err.message : String(err);
      end.exitCode = isUserError(err) ? 2 : 1;
      // a policy stop and bad input are explained; anything else is a bug: its stack helps
      if (nanError) opts.stderr.write(`run failed: ${end.message}\n`);
      else if (isUserError(err)) opts.stderr.write(`error: ${end.message}\n`);
      else opts.stderr.write(`run failed: ${err instanceof Error ? (err.stack ?? end.message) : end.message}\n`);
    }
  } finally {
    irq.dispose();
    await run.finalize(end.status, end.message);
  }
  return end;
}

/** 6. The summary table: status, folder, running time over all attempts, the latest metrics. */
function printSummary(run: LocalRun, message: string | undefined, stdout: NodeJS.WritableStream): void {
  const s = summarizeRun(run.dir);
  const rows: unknown[][] = [['run', run.runId], ['status', s.status + (message ? ` (${message})` : '')], ['dir', run.dir], ['duration', formatDuration(s.durationMs) + (s.attempts.length > 1 ? ` (${s.attempts.length} attempts)` : '')]];
  for (const [k, m] of Object.entries(s.metrics).sort(([a], [b]) => a.localeCompare(b))) rows.push([k, formatMetric(m.value)]);
  stdout.write(formatTable(['', ''], rows).split('\n').slice(2).join('\n') + '\n');
}

/** The config as params: everything but free-form `vars` (already interpolated where used). */
function paramsOf(value: RunConfigValue): Record<string, unknown> {
  const { vars: _vars, extends: _ext, ...rest } = value;
  return rest;
}

/** Plugin paths are relative to the config file; the run's config.yaml lives elsewhere, so make them absolute. */
function withAbsolutePlugins(cfg: ResolvedConfig): ResolvedConfig {
  const v = cfg.value as RunConfigValue;
  if (!Array.isArray(v.plugins) || v.plugins.length === 0) return cfg;
  const plugins = v.plugins.map((p, i) => {
    if (!p.startsWith('.')) return p;
    const f = cfg.origin(['plugins', i])?.file;
    return resolve(f ? dirname(f) : dirname(cfg.file), p);
  });
  return { ...cfg, value: { ...v, plugins } } as ResolvedConfig;
}

/**
 * The engine's backend chain (native TensorFlow, then wasm, then cpu, or the forced one);
 * its choice and the reasons other backends were skipped become run tags.
 */
async function selectBackend(want: 'auto' | BackendName, threads: number, onednn: OneDnnChoice, log: Logger): Promise<Record<string, string>> {
  try {
    return backendRunTags(await initBackend({ prefer: want, threads, onednn, log: (l) => log.info(l.replace(/^\[rass\] /, '')) }));
  } catch (e) {
    throw new UserError(`backend: ${(e as Error).message}`, { cause: e });
  }
}

function rassVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Cached per working directory for the life of the process: a sweep's trial worker runs many
 * trials with the code it loaded at its start, so the first answer is the right one, and it
 * saves two git processes per trial.
 */
const gitTagCache = new Map<string, Record<string, string>>();
function gitTags(cwd: string): Record<string, string> {
  let tags = gitTagCache.get(cwd);
  if (!tags) gitTagCache.set(cwd, (tags = readGitTags(cwd)));
  return tags;
}

function readGitTags(cwd: string): Record<string, string> {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, timeout: 3000, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd, timeout: 3000, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
    return /^[0-9a-f]{40}$/.test(commit) ? { 'rass.git_commit': commit, 'rass.git_dirty': String(dirty) } : {};
  } catch {
    return {};
  }
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

function makeLogger(stream: NodeJS.WritableStream): Logger {
  return {
    info: (m) => stream.write(`[rass] ${m}\n`),
    warn: (m) => stream.write(`warning: ${m}\n`),
    debug: (m) => {
      if (process.env.RASS_DEBUG) stream.write(`[debug] ${m}\n`);
    },
  };
}
