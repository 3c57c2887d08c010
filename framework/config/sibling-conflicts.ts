import { OriginMap, formatOrigin, type Origin } from './origins.js';
import type { ConfigIssue } from './errors.js';
import { formatPath, isPlainObject, type ConfigPath } from './paths.js';

/** A value a base sets: a scalar or list at `path` (maps merge, so they never clash as a whole). */
interface Leaf {
  path: ConfigPath;
  value: unknown;
  origin: Origin | undefined;
}

function leaves(v: unknown, origins: OriginMap, path: ConfigPath = [], out: Leaf[] = []): Leaf[] {
  if (isPlainObject(v) && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) leaves(x, origins, [...path, k], out);
  } else if (path.length > 0) out.push({ path, value: v, origin: origins.nearest(path) });
  return out;
}

/** Does the file's own content set `path` (the key itself, or an ancestor to a non-map value)? */
function childSets(child: unknown, path: ConfigPath): boolean {
  let cur = child;
  for (const seg of path) {
    if (!isPlainObject(cur)) return false;
    if (!(seg in cur)) return false;
    cur = cur[seg];
    if (!isPlainObject(cur)) return true;
  }
  return true;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const isPrefix = (p: ConfigPath, q: ConfigPath) => p.length <= q.length && p.every((s, i) => q[i] === s);

/**
 * Keys that two bases of one `extends` list set to different values, which the file naming
 * them does not set itself. Merging in order would let the later base win silently; a
 * researcher combining a model base and a schedule base wants to hear that they overlap.
 * A scalar against a map below it counts as well (`a: 1` against `a: {b: 2}`).
 */
export function siblingConflicts(bases: { file: string; value: unknown; origins: OriginMap; entry: Origin | undefined }[], child: unknown, childFile: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const seen: (Leaf & { file: string })[] = [];
  for (const base of bases) {
    for (const leaf of leaves(base.value, base.origins)) {
      const clash = seen.find((s) => s.file !== base.file && (isPrefix(s.path, leaf.path) || isPrefix(leaf.path, s.path)) && !(s.path.length === leaf.path.length && same(s.value, leaf.value)));
      if (clash && !childSets(child, leaf.path.length <= clash.path.length ? leaf.path : clash.path)) {
        const key = formatPath(leaf.path.length <= clash.path.length ? leaf.path : clash.path);
        issues.push({
          origin: base.entry,
          path: key,
          message: `"${key}" is set by two bases of one extends list: ${formatOrigin(clash.origin ?? { file: clash.file })} and ${formatOrigin(leaf.origin ?? { file: base.file })}; the later would win silently, so set it in ${formatOrigin({ file: childFile })} to choose (or remove it from one base)`,
        });
      }
    }
    for (const leaf of leaves(base.value, base.origins)) seen.push({ ...leaf, file: base.file });
  }
  // one issue per key
  return issues.filter((x, i) => issues.findIndex((y) => y.path === x.path) === i);
}
