import { DELETE, type Directive } from './yaml-source.js';
import { OriginMap } from './origins.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import { formatPath, isPlainObject, pathKey, type ConfigPath } from './paths.js';

export interface Layer {
  value: unknown;
  origins: OriginMap;
  directives: Map<string, Directive>;
}

/**
 * Merge `child` over `base`: maps deep-merge, lists and scalars replace, DELETE drops the
 * key, `!replace` replaces a map wholesale, `!patch` merges list elements by `id`.
 * Origins follow the values: a replaced subtree takes the child's origins.
 * `path` is the position in the result; `cpath` the position in the child (they differ
 * inside patched list elements, whose index in the result is the inherited element's).
 */
export function mergeLayers(base: Layer, child: Layer): { value: unknown; origins: OriginMap } {
  const origins = base.origins.clone();
  const issues: ConfigIssue[] = [];

  const takeChild = (c: unknown, path: ConfigPath, cpath: ConfigPath): unknown => {
    origins.deleteSubtree(path);
    origins.remapSubtree(child.origins, cpath, path);
    return strip(c);
  };

  const merge = (b: unknown, c: unknown, path: ConfigPath, cpath: ConfigPath): unknown => {
    const directive = child.directives.get(pathKey(cpath));
    if (directive === 'patch') {
      if (!Array.isArray(b)) {
        issues.push({ origin: child.origins.get(cpath), path: formatPath(path), message: `!patch needs an inherited list to patch, found ${b === undefined ? 'nothing' : typeof b}` });
        return b;
      }
      const out = [...b];
      (c as unknown[]).forEach((el, ci) => {
        const id = isPlainObject(el) ? el.id : undefined;
        if (id === undefined) {
          issues.push({ origin: child.origins.get([...cpath, ci]), path: formatPath([...path, ci]), message: '!patch list elements need an `id` naming the element to patch or add' });
          return;
        }
        const bi = out.findIndex((x) => isPlainObject(x) && x.id === id);
        if (bi < 0) out.push(takeChild(el, [...path, out.length], [...cpath, ci]));
        else out[bi] = merge(out[bi], el, [...path, bi], [...cpath, ci]);
      });
      return out;
    }
    if (isPlainObject(b) && isPlainObject(c) && directive !== 'replace') {
      const out: Record<string, unknown> = { ...b };
      for (const [k, cv] of Object.entries(c)) {
        const p = [...path, k];
        if (cv === DELETE) {
          delete out[k];
          origins.deleteSubtree(p);
        } else if (k in b) out[k] = merge(b[k], cv, p, [...cpath, k]);
        else out[k] = takeChild(cv, p, [...cpath, k]);
      }
      return out;
    }
    return takeChild(c, path, cpath);
  };

  const value = merge(base.value, child.value, [], []);
  if (issues.length) throw new ConfigError(issues);
  return { value, origins };
}

/** Remove DELETE markers from a subtree that has nothing to delete from. */
export function strip(v: unknown): unknown {
  if (Array.isArray(v)) return v.map((x) => (x === DELETE ? null : strip(x)));
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== DELETE) out[k] = strip(x);
    return out;
  }
  return v;
}
