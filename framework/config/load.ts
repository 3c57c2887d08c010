import { dirname, resolve } from 'node:path';
import { readYamlFile } from './yaml-source.js';
import { mergeLayers, type Layer } from './merge.js';
import { OriginMap, type Origin, formatOrigin } from './origins.js';
import { ConfigError } from './errors.js';
import { isPlainObject } from './paths.js';

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
  const load = (f: string, chain: string[], referencedFrom?: Origin): Layer => {
    const abs = resolve(f);
    if (chain.includes(abs)) {
      throw new ConfigError([{ origin: referencedFrom, path: 'extends', message: `extends cycle: ${[...chain, abs].map((x) => formatOrigin({ file: x })).join(' -> ')}` }]);
    }
    if (!files.includes(abs)) files.push(abs);
    const parsed = readYamlFile(abs, referencedFrom);
    if (!isPlainObject(parsed.value)) {
      throw new ConfigError([{ origin: { file: abs, line: 1, col: 1 }, path: '', message: `a config file must be a YAML mapping, found ${Array.isArray(parsed.value) ? 'a list' : typeof parsed.value}` }]);
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
