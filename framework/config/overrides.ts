import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';
import type { OriginMap } from './origins.js';
import { formatPath, isPlainObject, parsePath, type PathSeg } from './paths.js';

/**
 * Apply `--set path=value` overrides in order. The value is parsed as YAML (`1e-4` is a
 * number, `[1,2]` a list, `~` deletes the key); list indices are allowed
 * (`stages[1].prob=0.5`; index == length appends). Each overridden subtree gets the origin
 * `--set #n` (n counted from `firstIndex`).
 */
export function applySets(value: Record<string, unknown>, origins: OriginMap, sets: readonly string[], firstIndex = 1): void {
  sets.forEach((raw, i) => {
    const n = firstIndex + i;
    const origin = { set: n };
    const eq = raw.indexOf('=');
    if (eq <= 0) throw new ConfigError([{ origin, path: '', message: `--set "${raw}": expected path.to.key=value` }]);
    let path: PathSeg[];
    try {
      path = parsePath(raw.slice(0, eq).trim());
    } catch {
      throw new ConfigError([{ origin, path: '', message: `--set "${raw}": "${raw.slice(0, eq)}" is not a config path (use a.b[0].c)` }]);
    }
    let v: unknown;
    try {
      v = parseYaml(raw.slice(eq + 1));
    } catch (e) {
      throw new ConfigError([{ origin, path: formatPath(path), message: `--set value is not valid YAML: ${(e as Error).message.split('\n')[0]}` }]);
    }
    let cur: unknown = value;
    for (let d = 0; d < path.length - 1; d++) {
      const seg = path[d];
      const nextIsIndex = typeof path[d + 1] === 'number';
      if (typeof seg === 'number') {
        if (!Array.isArray(cur) || seg > cur.length) throw new ConfigError([{ origin, path: formatPath(path.slice(0, d + 1)), message: `--set: index ${seg} is out of range (list has ${Array.isArray(cur) ? cur.length : 0} elements)` }]);
        if (cur[seg] === undefined || cur[seg] === null) cur[seg] = nextIsIndex ? [] : {};
        cur = cur[seg];
      } else {
        if (!isPlainObject(cur)) throw new ConfigError([{ origin, path: formatPath(path.slice(0, d)), message: `--set: cannot set key "${seg}" inside a ${Array.isArray(cur) ? 'list' : typeof cur}` }]);
        if (cur[seg] === undefined || cur[seg] === null) cur[seg] = nextIsIndex ? [] : {};
        cur = cur[seg];
      }
    }
    const last = path[path.length - 1];
    origins.deleteSubtree(path);
    if (typeof last === 'number') {
      if (!Array.isArray(cur) || last > cur.length) throw new ConfigError([{ origin, path: formatPath(path), message: `--set: index ${last} is out of range (list has ${Array.isArray(cur) ? cur.length : 0} elements)` }]);
      if (v === null) cur.splice(last, 1);
      else cur[last] = v;
    } else {
      if (!isPlainObject(cur)) throw new ConfigError([{ origin, path: formatPath(path.slice(0, -1)), message: `--set: cannot set key "${last}" inside a ${Array.isArray(cur) ? 'list' : typeof cur}` }]);
      if (v === null) delete cur[last];
      else cur[last] = v;
    }
    if (v !== null) markAll(origins, path, v, origin);
  });
}

function markAll(origins: OriginMap, path: PathSeg[], v: unknown, origin: { set: number }): void {
  origins.set(path, origin);
  if (Array.isArray(v)) v.forEach((x, i) => markAll(origins, [...path, i], x, origin));
  else if (isPlainObject(v)) for (const [k, x] of Object.entries(v)) markAll(origins, [...path, k], x, origin);
}
