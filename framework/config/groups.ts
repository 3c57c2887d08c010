import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Origin } from './origins.js';
import { didYouMean } from '../errors.js';

/**
 * Config groups: the sub-folders of a `_base_/` folder (`_base_/models/`, `_base_/datasets/`,
 * ...) are groups and their files are the options. A selection `model=sd21-base` (from
 * `--set`, a sweep axis, or a file's `groups:` map) swaps whichever base of that group the
 * `extends` chain names for `_base_/models/sd21-base.yaml`. A selection names the group in the
 * singular or as the folder is spelled (`model` or `models`).
 */
export interface GroupSelection {
  option: string;
  origin: Origin;
  used: boolean;
}

/** The group a base file belongs to (its folder's name), or undefined outside a `_base_/` folder. */
export function groupOf(file: string): string | undefined {
  const dir = dirname(file);
  return basename(dirname(dir)) === '_base_' ? basename(dir) : undefined;
}

/**
 * Selections are keyed by the group's name in the singular: `model` and `models` are one
 * group, as are `loss` and `losses` (a final -es after s, or a final s not after another s).
 */
export function groupKey(name: string): string {
  if (/sses$/.test(name)) return name.slice(0, -2);
  if (/[^s]s$/.test(name)) return name.slice(0, -1);
  return name;
}

export function selectionFor(groups: ReadonlyMap<string, GroupSelection>, folder: string): GroupSelection | undefined {
  return groups.get(groupKey(folder));
}

/** The file a selection picks in the base's folder; a missing option is an error listing the options. */
export function optionFile(base: string, sel: GroupSelection, group: string): { file: string } | { error: string } {
  const dir = dirname(base);
  const file = join(dir, `${sel.option}.yaml`);
  if (existsSync(file)) return { file };
  const options = readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, '')).sort();
  return { error: `group "${group}" has no option "${sel.option}"${didYouMean(sel.option, options)}; options: ${options.join(', ')} (files in ${dir})` };
}

/** The selection a `--set` makes, when its bare name is one of the groups the chain uses. */
export function selectedGroup(set: string, groups: Iterable<string>): { name: string; option: string } | undefined {
  const sel = parseSelection(set);
  return sel && [...groups].some((g) => groupKey(g) === groupKey(sel.name)) ? sel : undefined;
}

/** `name=value` with a bare name (no dots or indices) could be a group selection. */
export function parseSelection(set: string): { name: string; option: string } | undefined {
  // (a sweep axis writes its values as JSON: model="sd21-base")
  const m = /^\s*([A-Za-z][\w-]*)\s*=\s*(?:"([\w.-]+)"|'([\w.-]+)'|([\w.-]+))\s*$/.exec(set);
  return m ? { name: m[1], option: m[2] ?? m[3] ?? m[4] } : undefined;
}
