import { sep } from 'node:path';
import type { PluginRegistry } from '../plugins/registry.js';
import { isPlainObject } from './paths.js';
import { isComponentLike, validateTree } from './validate.js';
import type { ResolvedConfig } from './resolved.js';

/**
 * Config fragments: files that are not run configs but pieces other files pull in, such as
 * `configs/_base_/models/sd-tiny.yaml` (fills `model`, merged through `extends:`) or a
 * degradation pipeline node (`rass degrade --pipeline`, or referenced from an experiment).
 * Validating one as a run config would fail on the missing `experiment`, so `rass validate`
 * checks it as the slot it fills instead.
 */
export interface FragmentCheck {
  /** What it is: `a degradation/pipeline component` or `fills `model``, `fills `vars.data``. */
  role: string;
  /** Component nodes (`type: kind/name`) checked against their plugin schema. */
  components: number;
  /** `${env:NAME}` references with no value here: needed when a run uses the fragment. */
  needsEnv: string[];
}

/**
 * A file is a fragment when it names no experiment plugin and is a component node or lives under
 * `_base_/` (a schedule fragment fills `experiment` options without naming the experiment).
 */
export function isFragment(cfg: ResolvedConfig): boolean {
  if ('experiment' in cfg.value && isComponentLike(cfg.value.experiment)) return false;
  return isComponentLike(cfg.value) || cfg.file.split(sep).includes('_base_');
}

/** Validate a fragment's component nodes against their plugin schemas (throws ConfigError). */
export function validateFragment(cfg: ResolvedConfig, registry: PluginRegistry, needsEnv: Iterable<string>): FragmentCheck {
  validateTree(cfg.value, cfg.origins, registry, {}, { includeVars: true });
  return { role: describeRole(cfg.value), components: countComponents(cfg.value), needsEnv: [...needsEnv].sort() };
}

function describeRole(v: Record<string, unknown>): string {
  if (isComponentLike(v)) return `a ${v.type} component`;
  const slots: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    // `vars: { data: ... }` fills vars.data: name the level experiments reference
    if (k === 'vars' && isPlainObject(x)) slots.push(...Object.keys(x).map((s) => `vars.${s}`));
    else slots.push(k);
  }
  return slots.length ? `fills ${slots.map((s) => `\`${s}\``).join(', ')}` : 'fills nothing (no keys)';
}

function countComponents(v: unknown): number {
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + countComponents(x), 0);
  if (!isPlainObject(v)) return 0;
  return (isComponentLike(v) ? 1 : 0) + Object.values(v).reduce((n: number, x) => n + countComponents(x), 0);
}
