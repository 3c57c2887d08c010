/**
 * Staged pipelines: a config with `stages:` instead of `experiment:` runs its stages one after
 * another (SCR -> RASS -> evaluate), each as an ordinary run (a child), under a parent run that
 * records the stages, their run ids and their final metrics. A later stage reads an earlier
 * one's output through `${stage:ID}` (that stage's run directory) in its `set`
 * overrides or inline node. The parent's id is a hash of the pipeline config and of the stage
 * config files it names, so running the same pipeline again (nothing edited) reopens it: FINISHED stages are skipped, interrupted ones resume from
 * their checkpoint, FAILED ones stop the pipeline unless `--retry-failed` resumes them.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, dumpConfig, loadConfig, type ResolvedConfig } from '../config/index.js';
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
const SHARED_KEYS = ['seed', 'backend', 'runs_dir', 'tracking', 'fail_on_nan', 'plugins', 'threads'] as const;

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

export interface PipelineOptions extends Omit<RunnerOptions, 'resume' | 'runId' | 'parentRunId' | 'configFile'> {
  configFile: string;
  /** resume FAILED stages instead of stopping at them */
  retryFailed?: boolean;
}

/**
 * `rass validate` of a pipeline: its own keys, then every stage as the run it will be (a stage
 * config file with the stage's overrides, or the inline node). `${stage:ID}` references stay
 * unresolved strings here (the stage runs do not exist yet).
 */
export async function validatePipeline(cfg: ResolvedConfig, registry: PluginRegistry, opts: { cwd: string; missingEnv?: (name: string) => string }): Promise<number> {
  const v = checkPipeline(cfg);
  const shared: string[] = [];
  for (const k of SHARED_KEYS) if (v[k] !== undefined && k !== 'plugins') shared.push(`${k}=${yamlScalar(v[k])}`);
  for (const [i, s] of v.stages.entries()) {
    if (s.config) {
      const target = resolve(dirname(cfg.file), s.config);
      if (!existsSync(target)) throw new ConfigError([{ origin: cfg.origin(['stages', i, 'config']) ?? { file: cfg.file }, path: `stages[${i}].config`, message: `no such file ${target}` }]);
      const stage = await loadConfig(target, { sets: [...shared, ...(s.set ?? [])], cwd: opts.cwd, ...(opts.missingEnv ? { missingEnv: opts.missingEnv } : {}) });
      await loadConfigPlugins(stage, registry);
      validateRunConfig(stage, registry);
    } else {
      const origins = new OriginMap();
      origins.remapSubtree(cfg.origins, ['stages', i, 'experiment'], ['experiment']);
      validateTree({ experiment: s.experiment }, origins, registry, runConfigSchema);
    }
  }
  return v.stages.length;
}

/** True when the file is a pipeline config (it has `stages:`); loads nothing else. */
export async function isPipelineConfig(file: string, opts: { env: Record<string, string | undefined>; cwd: string; sets?: readonly string[] }): Promise<boolean> {
  const cfg = await loadConfig(file, { sets: opts.sets ?? [], env: opts.env, cwd: opts.cwd });
  return Array.isArray((cfg.value as { stages?: unknown }).stages);
}

function checkPipeline(cfg: ResolvedConfig): PipelineValue {
  const v = cfg.value as PipelineValue;
  const issue = (path: (string | number)[], message: string) => new ConfigError([{ origin: cfg.origin(path) ?? { file: cfg.file }, path: path.join('.'), message }]);
  if (v.experiment !== undefined) throw issue(['experiment'], 'a pipeline config has `stages:` and no `experiment:` (each stage names its own)');
  const allowed = new Set(['extends', 'name', 'description', 'stages', 'summary', 'vars', 'tags', ...SHARED_KEYS]);
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
  const cfg = await loadConfig(file, { sets: opts.sets ?? [], env: opts.env, cwd: opts.cwd });
  const v = checkPipeline(cfg);
  const name = (v.name ?? basename(file).replace(/\.ya?ml$/, '')).replace(/[^A-Za-z0-9._-]/g, '_');
  const runsDir = resolve(opts.cwd, typeof v.runs_dir === 'string' ? v.runs_dir : 'runs');
  const { runs_dir: _rd, tracking: _tr, ...hashed } = v;
  // What a stage's `config:` file (and its extends chain) says is part of the pipeline: edit
  // configs/scr/shapes-tiny.yaml and the quickstart is a new pipeline, not a re-run that skips
  // the SCR stage trained with the old file.
  const stageConfigs = await Promise.all(
    v.stages.map(async (s) => {
      if (!s.config) return null;
      const target = resolve(dirname(file), s.config);
      return existsSync(target) ? (await loadConfig(target, { env: opts.env, cwd: opts.cwd })).value : null;
    }),
  );
  const hash = createHash('sha256').update(JSON.stringify({ pipeline: hashed, stageConfigs })).digest('hex').slice(0, 12);
  const parentRunId = `${name}-${hash}`;
  const parentDir = join(runsDir, name, parentRunId);
  const warn = (m: string) => opts.stderr.write(`warning: ${m}\n`);
  const out = (m: string) => opts.stdout.write(`${m}\n`);
  const reopened = existsSync(join(parentDir, 'journal.jsonl'));
  const parent = reopened ? LocalRun.reopen(parentDir, { warn }) : LocalRun.create(parentDir, parentRunId, { configYaml: dumpConfig(cfg), overrides: opts.sets ?? [] }, { warn });
  if (reopened) parent.setStatus('RUNNING', 'pipeline re-run');
  else {
    parent.append({ type: 'run', runId: parentRunId, experiment: name, name });
    parent.setStatus('RUNNING');
    parent.logParams({ stages: v.stages.map((s) => s.id).join(' -> ') });
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
        const stageFile = writeStageConfig(parentDir, file, s, done, where);
        out(`stage ${s.id}: run ${runId}`);
        const sets = [...shared, ...(s.set ?? []).map((x) => substituteStages(x, done, where))];
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
function writeStageConfig(parentDir: string, pipelineFile: string, s: StageSpec, done: ReadonlyMap<string, string>, where: string): string {
  const dir = join(parentDir, 'stages');
  mkdirSync(dir, { recursive: true });
  const f = join(dir, `${s.id}.yaml`);
  let body: Record<string, unknown>;
  if (s.config) {
    const target = resolve(dirname(pipelineFile), s.config);
    if (!existsSync(target)) throw new UserError(`${where}: config ${target} does not exist`);
    body = { extends: target };
  } else {
    body = { name: s.id, experiment: substituteDeep(s.experiment, done, where) };
  }
  writeFileSync(f, `# stage ${s.id} of pipeline ${pipelineFile}\n${stringify(body)}`);
  return f;
}
