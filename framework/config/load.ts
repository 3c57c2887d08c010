import { dirname, resolve } from 'node:path';
import { readYamlFile } from './yaml-source.js';
import { mergeLayers, type Layer } from './merge.js';
import { OriginMap, type Origin, formatOrigin } from './origins.js';
import { ConfigError } from './errors.js';
import { formatPath, isPlainObject, type ConfigPath } from './paths.js';

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
}

/**
 * Load `file` with its `extends:` chain: bases (one path or a list, relative to the file
 * that names them) are loaded recursively and merged in order, then the file itself on top.
 * A cycle is an error that prints the chain.
 */
export function loadWithExtends(file: string): LoadedFiles {
  const files: string[] = [];
  const load = (f: string, chain: string[], referencedFrom?: Origin, referencedAt?: string): Layer => {
    const abs = resolve(f);
    if (chain.includes(abs)) {
      throw new ConfigError([{ origin: referencedFrom, path: 'extends', message: `extends cycle: ${[...chain, abs].map((x) => formatOrigin({ file: x })).join(' -> ')}` }]);
    }
    if (!files.includes(abs)) files.push(abs);
    const parsed = readYamlFile(abs, referencedFrom, referencedAt);
    if (!isPlainObject(parsed.value)) {
      throw new ConfigError([{ origin: { file: abs, line: 1, col: 1 }, path: '', message: `a config file must be a YAML mapping, found ${Array.isArray(parsed.value) ? 'a list' : typeof parsed.value}` }]);
    }
    for (const inc of parsed.includes) {
      // an included file is loaded like a base (its extends resolved, cycles caught) and grafted in
      const sub = load(resolve(dirname(abs), inc.file), [...chain, abs], inc.origin, `${formatPath(inc.path)} (!include)`);
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
      list.forEach((entry, i) => {
        const where = extOrigins.get(Array.isArray(ext) ? ['extends', i] : ['extends']) ?? { file: abs };
        if (typeof entry !== 'string') throw new ConfigError([{ origin: where, path: 'extends', message: 'extends entries must be file paths (strings)' }]);
        const base = load(resolve(dirname(abs), entry), [...chain, abs], where);
        const withVia = { ...base, origins: base.origins.withVia(abs) };
        const merged = mergeLayers(layer, withVia);
        layer = { value: merged.value, origins: merged.origins, directives: new Map() };
      });
    }
    const merged = mergeLayers(layer, parsed);
    return { value: merged.value, origins: merged.origins, directives: new Map() };
  };
  const top = load(file, []);
  return { value: top.value as Record<string, unknown>, origins: top.origins, files };
}
