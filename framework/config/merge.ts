import { DELETE, type Directive } from './yaml-source.js';
import { OriginMap } from './origins.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import { formatPath, isPlainObject, pathKey, type ConfigPath } from './paths.js';
import { didYouMean } from '../errors.js';

/** Keys of a `!patch` list element that say what to do with it rather than being its content. */
const PATCH_OPS = ['$before', '$after'] as const;

export interface Layer {
  value: unknown;
  origins: OriginMap;
  directives: Map<string, Directive>;
}

/**
 * Merge `child` over `base`: maps deep-merge, lists and scalars replace, DELETE drops the
 * key, `!replace` replaces a map wholesale, `!patch` merges list elements by `id` (an element
 * with `$delete: true` drops the inherited one, `$before: id` / `$after: id` place a new one).
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
      const ids = () => out.map((x) => (isPlainObject(x) ? x.id : undefined)).filter((x) => x !== undefined).map(String);
      const indexOf = (id: unknown) => out.findIndex((x) => isPlainObject(x) && x.id === id);
      (c as unknown[]).forEach((el, ci) => {
        const id = isPlainObject(el) ? el.id : undefined;
        const at = [...cpath, ci];
        const issue = (message: string, key?: string) => issues.push({ origin: child.origins.get(key ? [...at, key] : at) ?? child.origins.get(at), path: formatPath([...path, ci]), message });
        if (id === undefined) {
          issue('!patch list elements need an `id` naming the element to patch, add or delete');
          return;
        }
        const el2 = el as Record<string, unknown>;
        const ops = PATCH_OPS.filter((k) => k in el2);
        const bi = indexOf(id);
        if (el2.$delete !== undefined) {
          // `{ id: x, $delete: true }` drops the inherited element x
          if (el2.$delete !== true) {
            issue('`$delete` takes the value true (to keep the element, leave it out of the patch)', '$delete');
            return;
          }
          if (Object.keys(el2).some((k) => k !== 'id' && k !== '$delete')) {
            issue('`$delete: true` takes no other keys than `id`', '$delete');
            return;
          }
          if (bi < 0) {
            issue(`$delete: no inherited element has id "${String(id)}"${didYouMean(String(id), ids())}; ids: ${ids().join(', ')}`, 'id');
            return;
          }
          out.splice(bi, 1);
          origins.deleteSubtree([...path, bi]);
          origins.shiftListDown(path, bi);
          return;
        }
        if (ops.length > 1) {
          issue('an element takes one of `$before` and `$after`, not both', ops[1]);
          return;
        }
        if (ops.length === 1) {
          // `{ id: new, $before: x, ...}` inserts a new element before (or after) the inherited x
          const op = ops[0];
          const anchor = el2[op];
          const ai = indexOf(anchor);
          if (bi >= 0) {
            issue(`${op}: "${String(id)}" is already in the list; ${op} places a new element (delete it and add it again to move it)`, op);
            return;
          }
          if (ai < 0) {
            issue(`${op}: no inherited element has id "${String(anchor)}"${didYouMean(String(anchor), ids())}; ids: ${ids().join(', ')}`, op);
            return;
          }
          const where = op === '$before' ? ai : ai + 1;
          const rest = Object.fromEntries(Object.entries(el2).filter(([k]) => k !== op));
          origins.shiftListUp(path, where);
          out.splice(where, 0, null);
          out[where] = takeChild(rest, [...path, where], at);
          return;
        }
        if (bi < 0) out.push(takeChild(el, [...path, out.length], at));
        else out[bi] = merge(out[bi], el, [...path, bi], at);
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
        // a !patch of a list no base defines is reported, not kept as a literal list of patch ops
        else if (child.directives.get(pathKey([...cpath, k])) === 'patch') out[k] = merge(undefined, cv, p, [...cpath, k]);
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
