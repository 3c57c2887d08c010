/**
 * Staged pipelines: a config with `stages:` instead of `experiment:` runs its stages one after
 * another (SCR -> RASS -> evaluate), each as an ordinary run (a child), under a parent run that
 * records the stages, their run ids and their final metrics. A later stage reads an earlier
 * one's output through `${stage:ID}` (that stage's run directory) in its `set`
 * overrides or inline node. The parent's id is a hash of the pipeline config and of the stage
 * config files it names, so running the same pipeline again (nothing edited) reopens it: FINISHED stages are skipped, interrupted ones resume from
 * their checkpoint, FAILED ones stop the pipeline unless `--retry-failed` resumes them.
 *
 * A `--set stages.<id>.<key>=<value>` reaches one stage: it is appended to that stage's own
 * `set` list (a sweep axis over a stage key is such a set). Any other `--set` is the pipeline's
 * own (`seed`, `backend`, ...: the keys a pipeline hands down to every stage).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, dumpConfig, formatPath, loadConfig, parsePath, type ResolvedConfig } from '../config/index.js';
import { loadConfigPlugins, validateRunConfig } from './run-config.js';
import { validateTree } from '../config/validate.js';
import { OriginMap } from '../config/origins.js';
import type { PluginRegistry } from '../plugins/registry.js';
import { runConfigSchema } from './run-schema.js';
import { UserError } from '../errors.js';
import { LocalRun } from '../tracking/local-run.js';
import { findRunDirs, formatDuration, formatMetric, summarizeRun } from '../tracking/run-store.js';
import { startTrackers, trackersOrWarn } from '../tracking/trackers.js';
import { formatTable } from '../output/table.js';
import { runExperiment, type RunnerOptions, type RunOutcome } from './runner.js';

/** Top-level keys a pipeline hands down to every stage (when it sets them). */
const SHARED_KEYS = ['seed', 'backend', 'runs_dir', 'tracking', 'fail_on_nan', 'plugins', 'threads', 'onednn'] as const;

export interface StageSpec {
  id: string;
  /** a run config file, relative to the pipeline file */
  config?: string;
  /** an inline experiment node (instead of `config`) */
  experiment?: Record<string, unknown>;
  /** `--set` style overrides; may reference `${stage:ID}` */
  set?: string[];
}

interface PipelineValue {
  name?: string;
  stages: StageSpec[];
  summary?: string[];
  [k: string]: unknown;
}

export interface PipelineOptions extends Omit<RunnerOptions, 'resume' | 'configFile'> {
  configFile: string;
  /**
   * `runId`: the parent run's id instead of the hash of the pipeline (a sweep's trial: a stable
   * id from the trial's overrides; re-running the trial reopens it). `parentRunId`: the run the
   * pipeline's parent is journaled under (the sweep's parent), so trackers nest sweep -> trial
   * pipeline -> stages.
   */
  /** resume FAILED stages instead of stopping at them */
  retryFailed?: boolean;
}

/**
 * `rass validate` of a pipeline: its own keys, then every stage as the run it will be (a stage
 * config file with the stage's overrides, or the inline node). `${stage:ID}` references stay
 * unresolved strings here (the stage runs do not exist yet).
 */
export async function validatePipeline(cfg: ResolvedConfig, registry: PluginRegistry, opts: { cwd: string; missingEnv?: (name: string) => string; stageSets?: readonly StageSet[] }): Promise<number> {
  const v = checkPipeline(cfg);
  const extra = stageSetsById(v, opts.stageSets ?? [], cfg.file);
  const shared: string[] = [];
  for (const k of SHARED_KEYS) if (v[k] !== undefined && k !== 'plugins') shared.push(`${k}=${yamlScalar(v[k])}`);
  for (const [i, s] of v.stages.entries()) {
    if (s.config) {
      const target = stageConfigFile(cfg, i, s.config);
      if (!existsSync(target)) throw new ConfigError([{ origin: cfg.origin(['stages', i, 'config']) ?? { file: cfg.file }, path: `stages[${i}].config`, message: `no such file ${target}` }]);
      const stage = await loadConfig(target, { sets: [...shared, ...(s.set ?? []), ...(extra.get(s.id) ?? [])], cwd: opts.cwd, ...(opts.missingEnv ? { missingEnv: opts.missingEnv } : {}) });
      await loadConfigPlugins(stage, registry);
      validateRunConfig(stage, registry);
    } else {
      const origins = new OriginMap();
      origins.remapSubtree(cfg.origins, ['stages', i, 'experiment'], ['experiment']);
      const sets = extra.get(s.id) ?? [];
      if (!sets.length) {
        validateTree({ experiment: s.experiment }, origins, registry, runConfigSchema);
        continue;
      }
      // an inline stage with overrides: the node the stage run will see (written to a file, as a run does)
      const dir = mkdtempSync(join(tmpdir(), 'rass-stage-'));
      try {
        const f = join(dir, `${s.id}.yaml`);
        writeFileSync(f, stringify({ name: s.id, experiment: s.experiment }));
        const stage = await loadConfig(f, { sets: [...shared, ...sets], cwd: opts.cwd, ...(opts.missingEnv ? { missingEnv: opts.missingEnv } : {}) });
        validateRunConfig(stage, registry);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return v.stages.length;
}

/** True when the file is a pipeline config (it has `stages:`); loads nothing else. */
export async function isPipelineConfig(file: string, opts: { env: Record<string, string | undefined>; cwd: string; sets?: readonly string[] }): Promise<boolean> {
  const cfg = await loadConfig(file, { sets: splitStageSets(opts.sets ?? []).pipeline, env: opts.env, cwd: opts.cwd });
  return Array.isArray((cfg.value as { stages?: unknown }).stages);
}

/** One `stages.<id>.<key>=<value>` override: the stage it addresses and the `set` it becomes there. */
export interface StageSet {
  id: string;
  /** `<key>=<value>` inside the stage's run config */
  set: string;
  /** as given */
  text: string;
}

/**
 * Split `--set`s into the pipeline's own and the stage-addressed ones (`stages.<id>.<key>=v`,
 * Hydra's `+` prefix kept). `stages[0]...` (an index) is left to the loader, which names the
 * problem; `stages.<id>=v` alone would replace a whole stage, which no run needs.
 */
export function splitStageSets(sets: readonly string[]): { pipeline: string[]; stages: StageSet[] } {
  const pipeline: string[] = [];
  const stages: StageSet[] = [];
  for (const text of sets) {
    const plus = text.trimStart().startsWith('+');
    const raw = plus ? text.trimStart().slice(1) : text;
    const eq = raw.indexOf('=');
    let path: (string | number)[] | undefined;
    try {
      path = eq > 0 ? parsePath(raw.slice(0, eq).trim()) : undefined;
    } catch {
      path = undefined;
    }
    if (!path || path[0] !== 'stages' || typeof path[1] !== 'string') {
      pipeline.push(text);
      continue;
    }
    if (path.length < 3) throw new UserError(`--set "${text}": a stage override names a key inside one stage, stages.${path[1]}.<key>=<value> (e.g. stages.${path[1]}.experiment.steps=10)`);
    stages.push({ id: path[1], set: `${plus ? '+' : ''}${formatPath(path.slice(2))}=${raw.slice(eq + 1)}`, text });
  }
  return { pipeline, stages };
}

/** The stage-addressed sets grouped by stage; one naming no stage of the pipeline is a UserError. */
function stageSetsById(v: PipelineValue, sets: readonly StageSet[], file: string): Map<string, string[]> {
  const ids = v.stages.map((s) => s.id);
  const out = new Map<string, string[]>();
  for (const x of sets) {
    if (!ids.includes(x.id)) throw new UserError(`${file}: --set "${x.text}" names stage "${x.id}", but the pipeline's stages are ${ids.join(', ')}`);
    out.set(x.id, [...(out.get(x.id) ?? []), x.set]);
  }
  return out;
}

/** The pipeline's name (its `name`, else the file's): the runs/ folder of its parent run. */
export function pipelineName(cfg: ResolvedConfig): string {
  const v = cfg.value as { name?: unknown };
  return (typeof v.name === 'string' ? v.name : basename(cfg.file).replace(/\.ya?ml$/, '')).replace(/[^A-Za-z0-9._-]/g, '_');
}

/**
 * The resolved value of each stage's `config:` file (null for inline stages): part of what a
 * pipeline computes, so it enters the ids of the pipeline's run (and of a sweep over it).
 */
export async function stageConfigValues(cfg: ResolvedConfig, opts: { env?: Record<string, string | undefined>; cwd: string }): Promise<unknown[]> {
  const v = cfg.value as PipelineValue;
  return Promise.all(
    v.stages.map(async (s, i) => {
      if (!s.config) return null;
      const target = stageConfigFile(cfg, i, s.config);
      return existsSync(target) ? (await loadConfig(target, { ...(opts.env ? { env: opts.env } : {}), cwd: opts.cwd })).value : null;
    }),
  );
}

/**
 * A stage's `config:` file, relative to the file that names it: a pipeline that `extends:` the
 * quickstart from configs/ablations/ keeps the quickstart's stages (configs/scr/...), as any
 * other path a config file names is its own.
 */
function stageConfigFile(cfg: ResolvedConfig, i: number, config: string): string {
  return resolve(dirname(cfg.origin(['stages', i, 'config'])?.file ?? cfg.file), config);
}

/** The stage ids of a pipeline config (after checking it). */
export function pipelineStageIds(cfg: ResolvedConfig): string[] {
  return checkPipeline(cfg).stages.map((s) => s.id);
}

function checkPipeline(cfg: ResolvedConfig): PipelineValue {
  const v = cfg.value as PipelineValue;
  const issue = (path: (string | number)[], message: string) => new ConfigError([{ origin: cfg.origin(path) ?? { file: cfg.file }, path: path.join('.'), message }]);
  if (v.experiment !== undefined) throw issue(['experiment'], 'a pipeline config has `stages:` and no `experiment:` (each stage names its own)');
  // `sweep:` is read by `rass sweep` (each trial runs the whole pipeline); a plain run ignores it
  const allowed = new Set(['extends', 'name', 'description', 'stages', 'summary', 'vars', 'tags', 'sweep', ...SHARED_KEYS]);
  for (const k of Object.keys(v)) if (!allowed.has(k)) throw issue([k], `unknown key "${k}" in a pipeline config (allowed: ${[...allowed].join(', ')})`);
  if (!v.stages.length) throw issue(['stages'], 'a pipeline needs at least one stage');
  const ids = new Set<string>();
  v.stages.forEach((s, i) => {
    if (typeof s !== 'object' || s === null) throw issue(['stages', i], 'a stage is a map: {id, config | experiment, set}');
    if (typeof s.id !== 'string' || !/^[A-Za-z0-9_-]+$/.test(s.id)) throw issue(['stages', i, 'id'], 'each stage needs an `id` of letters, digits, _ and -');
    if (ids.has(s.id)) throw issue(['stages', i, 'id'], `stage id "${s.id}" is used twice`);
    ids.add(s.id);
    if ((s.config === undefined) === (s.experiment === undefined)) throw issue(['stages', i], `stage ${s.id}: give exactly one of \`config\` (a run config file) or \`experiment\` (an inline node)`);
    for (const k of Object.keys(s)) if (!['id', 'config', 'experiment', 'set'].includes(k)) throw issue(['stages', i, k], `unknown stage key "${k}" (allowed: id, config, experiment, set)`);
    if (s.set !== undefined && (!Array.isArray(s.set) || s.set.some((x) => typeof x !== 'string'))) throw issue(['stages', i, 'set'], 'set is a list of key=value strings');
  });
  if (v.summary !== undefined && (!Array.isArray(v.summary) || v.summary.some((x) => typeof x !== 'string'))) throw issue(['summary'], 'summary is a list of metric names like scr/val/psnr');
  return v;
}

/** Replace `${stage:ID}` with that stage's run directory (an earlier, finished stage). */
function substituteStages(text: string, done: ReadonlyMap<string, string>, where: string): string {
  return text.replace(/\$\{stage:([^}]*)\}/g, (_, id: string) => {
    const dir = done.get(id);
    if (!dir) throw new UserError(`${where}: \${stage:${id}} names no earlier finished stage (earlier stages: ${[...done.keys()].join(', ') || 'none'})`);
    return dir;
  });
}

function substituteDeep(v: unknown, done: ReadonlyMap<string, string>, where: string): unknown {
  if (typeof v === 'string') return substituteStages(v, done, where);
  if (Array.isArray(v)) return v.map((x) => substituteDeep(x, done, where));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substituteDeep(x, done, where)]));
  return v;
}

function yamlScalar(v: unknown): string {
  return JSON.stringify(v); // JSON is YAML: the value keeps its type through --set
}

export async function runPipeline(opts: PipelineOptions): Promise<RunOutcome> {
  const file = resolve(opts.cwd, opts.configFile);
  const split = splitStageSets(opts.sets ?? []);
  const cfg = await loadConfig(file, { sets: split.pipeline, env: opts.env, cwd: opts.cwd });
  const v = checkPipeline(cfg);
  const stageSets = stageSetsById(v, split.stages, file);
  const name = pipelineName(cfg);
  const runsDir = resolve(opts.cwd, typeof v.runs_dir === 'string' ? v.runs_dir : 'runs');
  const { runs_dir: _rd, tracking: _tr, sweep: _sw, ...hashed } = v;
  // What a stage's `config:` file (and its extends chain) says is part of the pipeline: edit
  // configs/scr/shapes-tiny.yaml and the quickstart is a new pipeline, not a re-run that skips
  // the SCR stage trained with the old file. So are stage-addressed sets (a run with another
  // stage value must not skip that stage as "finished earlier").
  const stageConfigs = await stageConfigValues(cfg, { env: opts.env, cwd: opts.cwd });
  const hash = createHash('sha256').update(JSON.stringify({ pipeline: hashed, stageConfigs, ...(stageSets.size ? { stageSets: [...stageSets] } : {}) })).digest('hex').slice(0, 12);
  const parentRunId = opts.runId ?? `${name}-${hash}`;
  const parentDir = join(runsDir, name, parentRunId);
  const warn = (m: string) => opts.stderr.write(`warning: ${m}\n`);
  const out = (m: string) => opts.stdout.write(`${m}\n`);
  const reopened = existsSync(join(parentDir, 'journal.jsonl'));
  const parent = reopened ? LocalRun.reopen(parentDir, { warn }) : LocalRun.create(parentDir, parentRunId, { configYaml: dumpConfig(cfg), overrides: opts.sets ?? [] }, { warn });
  if (reopened) parent.setStatus('RUNNING', 'pipeline re-run');
  else {
    parent.append({ type: 'run', runId: parentRunId, experiment: name, name: opts.name ?? name, ...(opts.parentRunId ? { parentRunId: opts.parentRunId } : {}) });
    parent.setStatus('RUNNING');
    parent.logParams({ stages: v.stages.map((s) => s.id).join(' -> ') });
    if (opts.tags && Object.keys(opts.tags).length) parent.setTags(opts.tags);
  }
  parent.attachTrackers(await startTrackers(await trackersOrWarn(v as Record<string, unknown>, opts.registry, warn), { dir: parentDir, runId: parentRunId, experiment: name, config: v as Record<string, unknown>, env: opts.env }, warn));
  out(`pipeline ${name}: ${v.stages.length} stages (${v.stages.map((s) => s.id).join(' -> ')}); parent run ${parentRunId}`);

  const shared: string[] = [];
  // paths a stage must not re-resolve against its own (generated) file: made absolute here
  const pluginDir = dirname(cfg.origin(['plugins'])?.file ?? file);
  const sharedValue = (k: string): unknown => (k === 'runs_dir' ? runsDir : k === 'plugins' ? (v.plugins as string[]).map((p) => (p.startsWith('.') ? resolve(pluginDir, p) : p)) : v[k]);
  for (const k of SHARED_KEYS) if (v[k] !== undefined) shared.push(`${k}=${yamlScalar(sharedValue(k))}`);
  const done = new Map<string, string>();
  const finals: Record<string, number> = {};
  const rows: unknown[][] = [];
  let outcome: RunOutcome = { runId: parentRunId, dir: parentDir, status: 'FINISHED', exitCode: 0, metrics: {} };
  const started = Date.now();
  try {
    for (const [i, s] of v.stages.entries()) {
      const where = `${formatOriginOf(cfg, ['stages', i])} stages[${i}] (${s.id})`;
      const runId = `${parentRunId}.${s.id}`;
      const existing = findRunDirs(runsDir).find((d) => basename(d) === runId);
      const previous = existing ? summarizeRun(existing) : undefined;
      let r: RunOutcome;
      if (previous?.status === 'FINISHED' && existing) {
        out(`stage ${s.id}: finished earlier (run ${runId}), skipped`);
        r = { runId, dir: existing, status: 'FINISHED', exitCode: 0, metrics: latestValues(existing) };
      } else if (existing && previous?.status === 'FAILED' && !opts.retryFailed) {
        throw new UserError(`stage ${s.id} failed earlier (run ${runId}: ${previous.statusMessage ?? 'no message'}); fix the cause and re-run with --retry-failed to resume it, or delete ${existing} to start it again`);
      } else if (existing) {
        out(`stage ${s.id}: resuming run ${runId}`);
        r = await runExperiment({ ...opts, name: undefined, configFile: undefined, sets: [], resume: existing, runsDir, runId: undefined, parentRunId });
      } else {
        const stageFile = writeStageConfig(parentDir, file, s, s.config ? stageConfigFile(cfg, i, s.config) : undefined, done, where);
        out(`stage ${s.id}: run ${runId}`);
        const sets = [...shared, ...[...(s.set ?? []), ...(stageSets.get(s.id) ?? [])].map((x) => substituteStages(x, done, where))];
        r = await runExperiment({ ...opts, name: undefined, configFile: stageFile, sets, runId, parentRunId, tags: { ...(opts.tags ?? {}), 'rass.pipeline': name, 'rass.stage': s.id } });
      }
      rows.push([s.id, r.runId, r.status]);
      parent.setTags({ [`stage.${s.id}.run_id`]: r.runId, [`stage.${s.id}.status`]: r.status });
      if (r.status !== 'FINISHED') {
        outcome = { ...outcome, status: r.status, exitCode: r.exitCode };
        if (Object.keys(finals).length) parent.logMetrics(i, finals);
        await parent.finalize(r.status, `stage ${s.id} ${r.status.toLowerCase()} (run ${r.runId})`);
        return outcome;
      }
      done.set(s.id, r.dir);
      // the latest value of every metric the stage run journaled (its final evaluation included)
      for (const [k, x] of Object.entries(latestValues(r.dir))) finals[`${s.id}/${k}`] = x;
    }
    const chosen = v.summary ? Object.fromEntries(v.summary.filter((k) => finals[k] !== undefined).map((k) => [k, finals[k] as number])) : finals;
    const missing = (v.summary ?? []).filter((k) => finals[k] === undefined);
    if (missing.length) warn(`pipeline summary: no metric ${missing.join(', ')} (stages reported: ${Object.keys(finals).slice(0, 8).join(', ')}, ...)`);
    parent.logMetrics(v.stages.length, chosen);
    await parent.finalize('FINISHED');
    out(formatTable(['stage', 'run', 'status'], rows));
    out(formatTable(['metric', 'value'], Object.entries(chosen).map(([k, x]) => [k, formatMetric(x)])));
    out(`pipeline ${name}: FINISHED in ${formatDuration(Date.now() - started)}; parent run ${parentDir}`);
    return { ...outcome, metrics: chosen };
  } catch (e) {
    await parent.finalize('FAILED', (e as Error).message);
    throw e;
  }
}

function latestValues(dir: string): Record<string, number> {
  return Object.fromEntries(Object.entries(summarizeRun(dir).metrics).map(([k, m]) => [k, m.value]));
}

function formatOriginOf(cfg: ResolvedConfig, path: (string | number)[]): string {
  const o = cfg.origin(path);
  return o?.file ? `${o.file}${o.line ? `:${o.line}:${o.col}` : ''}` : cfg.file;
}

/**
 * A stage's own config file in the parent's `stages/` folder: `extends:` the named file, or the
 * inline experiment node (with `${stage:ID}` references resolved), so the stage run records a
 * real file and errors name it.
 */
function writeStageConfig(parentDir: string, pipelineFile: string, s: StageSpec, target: string | undefined, done: ReadonlyMap<string, string>, where: string): string {
  const dir = join(parentDir, 'stages');
  mkdirSync(dir, { recursive: true });
  const f = join(dir, `${s.id}.yaml`);
  let body: Record<string, unknown>;
  if (target) {
    if (!existsSync(target)) throw new UserError(`${where}: config ${target} does not exist`);
    body = { extends: target };
  } else {
    body = { name: s.id, experiment: substituteDeep(s.experiment, done, where) };
  }
  writeFileSync(f, `# stage ${s.id} of pipeline ${pipelineFile}\n${stringify(body)}`);
  return f;
}
