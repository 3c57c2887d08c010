import { resolve } from 'node:path';
import type { PluginRegistry } from '../plugins/registry.js';
import { loadWithExtends } from './load.js';
import { groupKey, selectedGroup, type GroupSelection } from './groups.js';
import { applySets, type CreatedKey } from './overrides.js';
import { interpolate } from './interpolate.js';
import { validateTree } from './validate.js';
import { dumpValue } from './dump.js';
import { OriginMap as OriginMapClass, type OriginMap } from './origins.js';
import { buildComponent } from './build.js';
import { consoleLogger, type ComponentNode, type Logger } from '../plugins/context.js';

import type { ResolvedConfig } from './resolved.js';
export type { ResolvedConfig } from './resolved.js';
export type { Origin } from './origins.js';
export { formatOrigin } from './origins.js';
export { ConfigError, formatIssue } from './errors.js';
export type { ConfigIssue } from './errors.js';
export { buildComponent } from './build.js';
export { isFragment, validateFragment, type FragmentCheck } from './fragment.js';
export type { BuildBase } from './build.js';
export { formatPath, parsePath, getAt } from './paths.js';

export interface LoadOptions {
  sets?: readonly string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  /**
   * Value for an unset `${env:NAME}` that has no default (instead of an error): `rass validate`
   * uses it to check fragments whose paths only a run's environment supplies.
   */
  missingEnv?: (name: string) => string;
}

function finish(raw: Record<string, unknown>, origins: OriginMap, file: string, files: string[], overrides: string[], env: Record<string, string | undefined>, missingEnv: ((name: string) => string) | undefined, groups: ReadonlySet<string>, created: readonly CreatedKey[]): ResolvedConfig {
  const value = structuredClone(raw);
  interpolate(value, origins, env, missingEnv);
  return { value, file, files, overrides, origins, raw, env, groups, created, origin: (p) => origins.nearest(p) };
}

/** Read a config file with its extends chain, apply `--set`s, interpolate. Throws ConfigError. */
export async function loadConfig(file: string, opts: LoadOptions = {}): Promise<ResolvedConfig> {
  return resolveFile(resolve(opts.cwd ?? process.cwd(), file), [...(opts.sets ?? [])], opts.env ?? process.env, opts.missingEnv);
}

/**
 * Sets that select a config group's option (`model=sd21-base`: a bare name that is a group
 * the extends chain uses) are applied while loading; the others on the merged tree.
 */
function resolveFile(abs: string, sets: string[], env: Record<string, string | undefined>, missingEnv?: (name: string) => string): ResolvedConfig {
  let loaded = loadWithExtends(abs);
  const selections = new Map<string, GroupSelection>();
  const plain: { set: string; n: number }[] = [];
  sets.forEach((set, i) => {
    const sel = selectedGroup(set, loaded.groups);
    if (sel) selections.set(groupKey(sel.name), { option: sel.option, origin: { set: i + 1 }, used: false });
    else plain.push({ set, n: i + 1 });
  });
  if (selections.size) loaded = loadWithExtends(abs, selections);
  const { value, origins, files, groups } = loaded;
  const created: CreatedKey[] = [];
  for (const { set, n } of plain) applySets(value, origins, [set], n, created);
  return finish(value, origins, abs, files, sets, env, missingEnv, groups, created);
}

/**
 * A new config with more `--set`s applied on top (sweeps use this per trial), re-interpolated.
 * A set that selects a group option reloads the files, since it changes which files merge.
 */
export function applyOverrides(cfg: ResolvedConfig, sets: readonly string[]): ResolvedConfig {
  if (sets.some((set) => selectedGroup(set, cfg.groups))) return resolveFile(cfg.file, [...cfg.overrides, ...sets], cfg.env);
  const raw = structuredClone(cfg.raw);
  const origins = cfg.origins.clone();
  const created = [...cfg.created];
  applySets(raw, origins, sets, cfg.overrides.length + 1, created);
  return finish(raw, origins, cfg.file, cfg.files, [...cfg.overrides, ...sets], cfg.env, undefined, cfg.groups, created);
}

/**
 * Validate (and fill defaults into) cfg.value against `rootSchema` (the schema of the document's
 * top level, owned by whoever runs it: the runner's run schema, `{}` for a bare component
 * file); throws ConfigError listing every issue.
 */
export function validateConfig(cfg: ResolvedConfig, registry: PluginRegistry, rootSchema: object): void {
  validateTree(cfg.value, cfg.origins, registry, rootSchema, { created: cfg.created });
}

/** The resolved config as YAML, optionally with each value's origin as a comment. */
export function dumpConfig(cfg: ResolvedConfig, opts: { origins?: boolean } = {}): string {
  return dumpValue(cfg.value, opts.origins ? cfg.origins : undefined);
}

/**
 * Validate and build one component node that did not come from a config file (tests,
 * benchmarks, library use): the same schema checks and defaults as a run config, paths
 * resolved against `baseDir`. The node is copied, never mutated.
 */
export async function buildNode<T>(node: ComponentNode, registry: PluginRegistry, base: { seed?: number; log?: Logger; baseDir?: string; path?: string } = {}): Promise<T> {
  const value = structuredClone(node) as unknown as Record<string, unknown>;
  validateTree(value, new OriginMapClass(), registry, {});
  return buildComponent<T>(value as ComponentNode, registry, { seed: base.seed ?? 0, log: base.log ?? consoleLogger, path: base.path, cwd: base.baseDir });
}
