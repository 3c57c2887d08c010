import { dirname, resolve } from 'node:path';
import { readYamlFile } from './yaml-source.js';
import { mergeLayers, type Layer } from './merge.js';
import { OriginMap, type Origin, formatOrigin } from './origins.js';
import { ConfigError } from './errors.js';
import { formatPath, isPlainObject, type ConfigPath } from './paths.js';
import { siblingConflicts } from './sibling-conflicts.js';
import { groupKey, groupOf, optionFile, selectionFor, type GroupSelection } from './groups.js';

/** Set `value` at `path` inside an already-built tree (the path exists up to its parent). */
function setAt(root: Record<string, unknown>, path: ConfigPath, value: unknown): void {
  let cur: unknown = root;
  for (const seg of path.slice(0, -1)) cur = (cur as Record<string | number, unknown>)[seg];
  (cur as Record<string | number, unknown>)[path[path.length - 1]] = value;
}

export interface LoadedFiles {
  value: Record<string, unknown>;
  origins: OriginMap;
  files: string[];
  /** The groups (`_base_/<group>/` folders) the extends chain names a base of. */
  groups: Set<string>;
}

/**
 * Load `file` with its `extends:` chain: bases (one path or a list, relative to the file
 * that names them) are loaded recursively and merged in order, then the file itself on top.
 * A cycle is an error that prints the chain.
 */
export function loadWithExtends(file: string, selections: ReadonlyMap<string, GroupSelection> = new Map()): LoadedFiles {
  const files: string[] = [];
  const groupsSeen = new Set<string>();
  const fileSelections: GroupSelection[] = [];
  const load = (f: string, chain: string[], referencedFrom?: Origin, referencedAt?: string, inherited: ReadonlyMap<string, GroupSelection> = selections): Layer => {
    const abs = resolve(f);
    if (chain.includes(abs)) {
      throw new ConfigError([{ origin: referencedFrom, path: 'extends', message: `extends cycle: ${[...chain, abs].map((x) => formatOrigin({ file: x })).join(' -> ')}` }]);
    }
    if (!files.includes(abs)) files.push(abs);
    const parsed = readYamlFile(abs, referencedFrom, referencedAt);
    if (!isPlainObject(parsed.value)) {
      throw new ConfigError([{ origin: { file: abs, line: 1, col: 1 }, path: '', message: `a config file must be a YAML mapping, found ${Array.isArray(parsed.value) ? 'a list' : typeof parsed.value}` }]);
    }
    // `groups: {dataset: cityscapes}` selects options for this file's bases; selections made
    // above (the command line, a file that extends this one) win over the file's own
    const sel = new Map<string, GroupSelection>();
    const own = parsed.value.groups;
    if (own !== undefined) {
      if (!isPlainObject(own)) throw new ConfigError([{ origin: parsed.origins.get(['groups']) ?? { file: abs }, path: 'groups', message: 'expected a map of group: option (e.g. {dataset: cityscapes})' }]);
      for (const [g, o] of Object.entries(own)) {
        if (typeof o !== 'string') throw new ConfigError([{ origin: parsed.origins.get(['groups', g]) ?? { file: abs }, path: `groups.${g}`, message: 'expected the name of a file in the group folder (without .yaml)' }]);
        const s = { option: o, origin: parsed.origins.get(['groups', g]) ?? { file: abs }, used: false };
        sel.set(groupKey(g), s);
        fileSelections.push(s);
      }
      delete parsed.value.groups;
      parsed.origins.deleteSubtree(['groups']);
    }
    for (const [g, s] of inherited) {
      // a selection from above replaces the file's own, which then counts as used
      const mine = sel.get(g);
      if (mine && mine !== s) mine.used = true;
      sel.set(g, s);
    }
    // a base or an included file in a `_base_/<group>/` folder fills that group's slot and can be
    // swapped by a selection; not when the file naming it is in that group itself (rass-full
    // extends realesrgan: one option built on another, not a slot)
    const slot = (target: string): string => {
      const group = groupOf(target);
      if (group === undefined || groupKey(group) === groupKey(groupOf(abs) ?? '')) return target;
      groupsSeen.add(group);
      const chosen = selectionFor(sel, group);
      if (!chosen) return target;
      chosen.used = true;
      const picked = optionFile(target, chosen, group);
      if ('error' in picked) throw new ConfigError([{ origin: chosen.origin, path: 'groups', message: picked.error }]);
      return picked.file;
    };
    for (const inc of parsed.includes) {
      // an included file is loaded like a base (its extends resolved, cycles caught) and grafted in
      const sub = load(slot(resolve(dirname(abs), inc.file)), [...chain, abs], inc.origin, `${formatPath(inc.path)} (!include)`, sel);
      setAt(parsed.value, inc.path, sub.value);
      parsed.origins.deleteSubtree(inc.path);
      parsed.origins.remapSubtree(sub.origins.withVia(abs), [], inc.path);
      parsed.origins.set(inc.path, inc.origin);
    }
    const ext = parsed.value.extends;
    const extOrigins = parsed.origins.clone();
    delete parsed.value.extends;
    parsed.origins.deleteSubtree(['extends']);
    let layer: Layer = { value: {}, origins: new OriginMap(), directives: new Map() };
    if (ext !== undefined && typeof ext !== 'symbol') {
      const list = Array.isArray(ext) ? ext : [ext];
      const bases: Parameters<typeof siblingConflicts>[0] = [];
      list.forEach((entry, i) => {
        const where = extOrigins.get(Array.isArray(ext) ? ['extends', i] : ['extends']) ?? { file: abs };
        if (typeof entry !== 'string') throw new ConfigError([{ origin: where, path: 'extends', message: 'extends entries must be file paths (strings)' }]);
        const baseFile = slot(resolve(dirname(abs), entry));
        const base = load(baseFile, [...chain, abs], where, undefined, sel);
        const withVia = { ...base, origins: base.origins.withVia(abs) };
        bases.push({ file: baseFile, value: base.value, origins: withVia.origins, entry: where });
        const merged = mergeLayers(layer, withVia);
        layer = { value: merged.value, origins: merged.origins, directives: new Map() };
      });
      const clashes = siblingConflicts(bases, parsed.value, abs);
      if (clashes.length) throw new ConfigError(clashes);
    }
    const merged = mergeLayers(layer, parsed);
    return { value: merged.value, origins: merged.origins, directives: new Map() };
  };
  const top = load(file, []);
  const unused = [...selections.entries(), ...fileSelections.map((s) => [s.option, s] as const)].filter(([, s]) => !s.used);
  if (unused.length) {
    throw new ConfigError(unused.map(([, s]) => ({ origin: s.origin, path: 'groups', message: `selects "${s.option}" but no base in the extends chain of ${formatOrigin({ file })} belongs to that group (extends or !include); groups it uses: ${[...groupsSeen].sort().join(', ') || 'none'}` })));
  }
  return { value: top.value as Record<string, unknown>, origins: top.origins, files, groups: groupsSeen };
}
