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
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { buildComponent, dumpConfig, formatOrigin, loadConfig } from '../config/index.js';
import { loadConfigPlugins, validateRunConfig } from './run-config.js';
import type { RunConfigValue } from './run-schema.js';
import type { ResolvedConfig } from '../config/index.js';
import type { Experiment, RunContext } from '../contracts/experiment.js';
import { createProgress } from '../output/progress.js';
import { formatTable } from '../output/table.js';
import { initBackend, backendRunTags, type BackendName } from '../engine/backend.js';
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

export async function runExperiment(opts: RunnerOptions): Promise<RunOutcome> {
  const log = makeLogger(opts.stderr);
  const sets = [...(opts.sets ?? [])];

  // 1. the config (from the file, or the resumed run's own resolved copy)
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
  await loadConfigPlugins(cfg, opts.registry);
  validateRunConfig(cfg, opts.registry);
  const value = cfg.value as RunConfigValue;

  // 2. backend, then the experiment (bad options fail here, before any run directory exists)
  const backendTags = await selectBackend(value.backend ?? 'auto', value.threads ?? 0, log);
  const expNode = value.experiment;
  const experimentName = expNode.type.slice(expNode.type.indexOf('/') + 1);
  const runName = opts.name ?? value.name ?? experimentName;
  const controller = new AbortController();
  // runsDir: plugins that read earlier runs (`finishedRun`) look them up in this run's store
  const services: Record<string, unknown> = { signal: controller.signal, runsDir: resolve(opts.cwd, value.runs_dir ?? 'runs'), cwd: opts.cwd };
  const build = <T>(node: ComponentNode, o: { expectKind?: PluginKind; path?: string } = {}): Promise<T> =>
    buildComponent<T>(node, opts.registry, { seed: value.seed ?? 0, log, services, cfg, cwd: opts.cwd, ...o });
  const experiment = await build<Experiment>(expNode, { path: 'experiment', expectKind: 'experiment' });
  if (!experiment || typeof (experiment as Partial<Experiment>).run !== 'function') {
    throw new UserError(`${file}: experiment: plugin ${expNode.type} did not build an experiment (an object with run(ctx))`);
  }

  // 3. the run directory
  const configYaml = dumpConfig(withAbsolutePlugins(cfg), { origins: false });
  // the hash identifies what was computed: where it is stored or tracked does not change it
  const { runs_dir: _rd, tracking: _tr, fail_on_nan: _fn, ...hashed } = value;
  const configHash = createHash('sha256').update(JSON.stringify(sortKeys(hashed))).digest('hex').slice(0, 16);
  const warn = (m: string) => log.warn(m);
  let run: LocalRun;
  if (resumeDir) {
    run = LocalRun.reopen(resumeDir, { warn });
    run.setStatus('RUNNING', 'resumed');
  } else {
    const runId = opts.runId ?? newRunId();
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(runId)) throw new UserError(`run id "${runId}": use letters, digits, '.', '_' and '-'`);
    const runsRoot = resolve(opts.cwd, value.runs_dir ?? 'runs');
    const where = formatOrigin(cfg.origin(['runs_dir']));
    ensureWritableDir(runsRoot, `runs_dir${value.runs_dir !== undefined && where ? ` (${where})` : ''}`);
    const dir = join(runsRoot, experimentName, runId);
    run = LocalRun.create(dir, runId, { configYaml, overrides: sets }, { warn });
    run.append({ type: 'run', runId, experiment: experimentName, name: runName, configHash, ...(opts.parentRunId ? { parentRunId: opts.parentRunId } : {}) });
    run.setStatus('RUNNING');
  }
  services.run = run;
  log.info(`run ${run.runId}${resumeDir ? ' (resumed)' : ''}: ${run.dir}`);

  // remote trackers mirror the journal; a tracker that fails to start is a warning, not a failed run
  const trackers: RunTracker[] = [];
  // the tracker plugins the config selects (`tracking.trackers`, default: MLflow when a URI is set)
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
      warn(`tracker failed to start: ${(e as Error).message}`);
    }
  }
  run.attachTrackers(trackers);

  // every attempt (the first start and each resume) records where it ran: a resume may land on
  // another host or backend, and the run-level tags describe the latest attempt
  const attempt = summarizeRun(run.dir).attempts.length;
  const attemptTags = { 'rass.attempts': String(attempt), [`rass.attempt.${attempt}.backend`]: backendTags['rass.backend'] ?? 'unknown', [`rass.attempt.${attempt}.host`]: hostname() };
  if (resumeDir) run.setTags({ ...backendTags, 'rass.host': hostname(), ...attemptTags });
  if (!resumeDir) {
    run.logParams(paramsOf(value));
    run.logArtifact('config.yaml', configYaml);
    run.setTags({
      ...(value.tags ?? {}),
      ...(opts.tags ?? {}),
      'rass.config_hash': configHash,
      ...backendTags,
      'rass.version': rassVersion(),
      'rass.host': hostname(),
      ...gitTags(opts.cwd),
      ...attemptTags,
    });
  }

  // 4. signals: abort the experiment, give it a moment to checkpoint, then close the run as KILLED
  let killedBy: string | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  let resolveKilled: () => void = () => {};
  const killed = new Promise<void>((r) => (resolveKilled = r));
  const onSignal = (sig: string) => {
    if (killedBy !== undefined) {
      resolveKilled(); // a second signal: stop waiting
      return;
    }
    killedBy = sig;
    log.warn(`${sig}: stopping run ${run.runId} (journal flushed, status KILLED)`);
    run.journal.sync();
    controller.abort(new Error(`run killed by ${sig}`));
    graceTimer = setTimeout(resolveKilled, opts.killGraceMs ?? 10_000);
    graceTimer.unref();
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  if (opts.handleSignals) {
    process.on('SIGINT', sigint);
    process.on('SIGTERM', sigterm);
  }
  // the abort reason may name the signal it stands for (a sweep's trial worker passes SIGINT on)
  const onExternalAbort = () => onSignal(opts.signal?.reason === 'SIGINT' ? 'SIGINT' : 'SIGTERM');
  opts.signal?.addEventListener('abort', onExternalAbort, { once: true });

  // the NaN policy: checked after the values are journaled; the first violation is kept so an
  // experiment that swallows the error still ends FAILED (and cannot log past it)
  const checkMetrics = nanGuard(value.fail_on_nan);
  let nanError: NonFiniteMetricError | undefined;
  const logMetrics = (step: number, values: Record<string, number>) => {
    run.logMetrics(step, values);
    if (nanError) throw nanError;
    try {
      checkMetrics(step, values);
    } catch (e) {
      nanError = e as NonFiniteMetricError;
      throw e;
    }
  };

  const latest = resumeDir ? run.latestCheckpoint() : undefined;
  const ctx: RunContext = {
    runId: run.runId,
    runDir: run.dir,
    artifactsDir: run.artifactsDir,
    checkpointsDir: run.checkpointsDir,
    seed: value.seed ?? 0,
    signal: controller.signal,
    log,
    ...(resumeDir ? { resume: latest ? { checkpointDir: latest } : {} } : {}),
    logParams: (p) => run.logParams(p),
    logMetrics,
    setTags: (t) => run.setTags(t),
    logArtifact: async (rel, data) => run.logArtifact(rel, data),
    saveCheckpoint: (name, write) => run.saveCheckpoint(name, write),
    progress: (label, total) => createProgress(label, total, { stream: opts.stderr as never }),
    build: (node, o) => build(node, { ...(o?.path ? { path: o.path } : {}), ...(o?.expectKind ? { expectKind: o.expectKind } : {}) }),
  };

  // 4b. errors thrown outside the experiment's promise (a timer, an event handler): without a
  // handler Node would kill the process with the run left RUNNING; the first one fails the run
  // like an error the experiment threw, and aborts the experiment so it stops
  let strayError: unknown;
  let rejectStray: (e: unknown) => void = () => {};
  const stray = new Promise<never>((_, rej) => (rejectStray = rej));
  stray.catch(() => {}); // consumed by the race below; never itself an unhandled rejection
  const onStray = (e: unknown) => {
    if (strayError !== undefined) return;
    strayError = e ?? new Error('unhandled rejection with no reason');
    controller.abort(strayError);
    rejectStray(strayError);
  };
  const handleUncaught = opts.handleUncaught ?? opts.handleSignals ?? false;
  if (handleUncaught) {
    process.on('uncaughtException', onStray);
    process.on('unhandledRejection', onStray);
  }

  // 5. run it
  let status: RunStatus = 'FINISHED';
  let message: string | undefined;
  let exitCode = 0;
  let finalMetrics: Record<string, number> = {};
  try {
    const running = experiment.run(ctx);
    // after a stray error wins the race, the experiment's own later rejection is expected
    if (handleUncaught) Promise.resolve(running).catch(() => {});
    const result = await Promise.race([running, killed.then(() => 'killed' as const), stray]);
    if (strayError !== undefined) throw strayError;
    if (killedBy) throw new Error(`run killed by ${killedBy}`);
    if (nanError) throw nanError;
    if (result && typeof result === 'object') {
      finalMetrics = Object.fromEntries(Object.entries(result).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
      const journaled = summarizeRun(run.dir).metrics;
      const lastStep = Math.max(0, ...Object.values(journaled).map((m) => m.step));
      // the experiment usually journaled its final evaluation itself at the last step: only
      // values it did not journal there are added, so each appears once
      const missing = Object.fromEntries(Object.entries(finalMetrics).filter(([k, v]) => !(journaled[k]?.step === lastStep && Object.is(journaled[k].value, v))));
      if (Object.keys(missing).length) logMetrics(lastStep, missing);
    }
  } catch (e) {
    if (killedBy) {
      status = 'KILLED';
      message = `killed by ${killedBy}`;
      exitCode = SIGNAL_EXIT[killedBy] ?? 143;
    } else {
      status = 'FAILED';
      // a NaN stops the run even when the experiment wrapped or replaced the guard's error; a
      // stray error is the cause even when the experiment then failed on the abort it caused
      const err = nanError ?? strayError ?? e;
      message = err instanceof Error ? err.message : String(err);
      exitCode = isUserError(err) ? 2 : 1;
      // a policy stop and bad input are explained; anything else is a bug: its stack helps
      if (nanError) opts.stderr.write(`run failed: ${message}\n`);
      else if (isUserError(err)) opts.stderr.write(`error: ${message}\n`);
      else opts.stderr.write(`run failed: ${err instanceof Error ? (err.stack ?? message) : message}\n`);
    }
  } finally {
    if (graceTimer) clearTimeout(graceTimer);
    if (opts.handleSignals) {
      process.off('SIGINT', sigint);
      process.off('SIGTERM', sigterm);
    }
    if (handleUncaught) {
      process.off('uncaughtException', onStray);
      process.off('unhandledRejection', onStray);
    }
    opts.signal?.removeEventListener('abort', onExternalAbort);
    await run.finalize(status, message);
  }

  // 6. summary
  const s = summarizeRun(run.dir);
  const rows: unknown[][] = [['run', run.runId], ['status', s.status + (message ? ` (${message})` : '')], ['dir', run.dir], ['duration', formatDuration(s.durationMs) + (s.attempts.length > 1 ? ` (${s.attempts.length} attempts)` : '')]];
  for (const [k, m] of Object.entries(s.metrics).sort(([a], [b]) => a.localeCompare(b))) rows.push([k, formatMetric(m.value)]);
  opts.stdout.write(formatTable(['', ''], rows).split('\n').slice(2).join('\n') + '\n');
  return { runId: run.runId, dir: run.dir, status, exitCode, metrics: finalMetrics, ...(strayError !== undefined ? { stray: true } : {}) };
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
async function selectBackend(want: 'auto' | BackendName, threads: number, log: Logger): Promise<Record<string, string>> {
  try {
    return backendRunTags(await initBackend({ prefer: want, threads, log: (l) => log.info(l.replace(/^\[rass\] /, '')) }));
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
