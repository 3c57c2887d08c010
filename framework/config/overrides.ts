import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';
import { formatOrigin, type OriginMap } from './origins.js';
import { formatPath, isPlainObject, parsePath, type PathSeg } from './paths.js';

/**
 * Apply `--set path=value` overrides in order. The value is parsed as YAML (`1e-4` is a
 * number, `[1,2]` a list, `~` deletes the key); list indices are allowed
 * (`stages[1].prob=0.5`; index == length appends). Each overridden subtree gets the origin
 * `--set #n` (n counted from `firstIndex`).
 */
export interface CreatedKey {
  path: PathSeg[];
  /** index in `path` of the first key no file defines (the containers below it were created too) */
  from: number;
  set: number;
}

/**
 * `created` collects the keys a `--set` adds that no file defines (without a leading `+`):
 * validation accepts them only where a plugin's or the run's schema declares the key (its
 * default applies otherwise), so a typo in a free-form place is not silently added.
 */
export function applySets(value: Record<string, unknown>, origins: OriginMap, sets: readonly string[], firstIndex = 1, created: CreatedKey[] = []): void {
  sets.forEach((raw0, i) => {
    const n = firstIndex + i;
    const origin = { set: n };
    // Hydra's convention: `+a.b=1` adds a key no file defines
    const adding = raw0.trimStart().startsWith('+');
    const raw = adding ? raw0.trimStart().slice(1) : raw0;
    const fail = (path: string, message: string): never => {
      throw new ConfigError([{ origin, path, message: `--set "${raw}": ${message}` }]);
    };
    const eq = raw.indexOf('=');
    if (eq <= 0) fail('', 'expected path.to.key=value');
    let path: PathSeg[] = [];
    try {
      path = parsePath(raw.slice(0, eq).trim());
    } catch {
      fail('', `"${raw.slice(0, eq)}" is not a config path (use a.b[0].c)`);
    }
    const text = raw.slice(eq + 1);
    // An empty value would parse as YAML null and silently delete the key: deletion must be asked for.
    if (text.trim() === '') fail(formatPath(path), 'empty value (to delete the key write `~`, for an empty string write \'\')');
    let v: unknown;
    try {
      v = parseYaml(text);
    } catch (e) {
      fail(formatPath(path), `value is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
    }
    const what = (x: unknown) => (Array.isArray(x) ? 'a list' : isPlainObject(x) ? 'a map' : x === undefined ? 'nothing' : `a ${typeof x}`);
    const checkIndex = (cur: unknown, seg: number, upTo: number): unknown[] => {
      if (!Array.isArray(cur)) return fail(formatPath(path.slice(0, upTo - 1)), `index [${seg}] needs a list, but ${formatPath(path.slice(0, upTo - 1))} is ${what(cur)}`);
      if (seg > cur.length) fail(formatPath(path.slice(0, upTo)), `index ${seg} is out of range (the list has ${cur.length} element${cur.length === 1 ? '' : 's'}; index ${cur.length} appends)`);
      return cur;
    };
    let cur: unknown = value;
    let firstMissing: PathSeg[] | undefined;
    for (let d = 0; d < path.length - 1; d++) {
      const seg = path[d];
      const nextIsIndex = typeof path[d + 1] === 'number';
      let container: Record<string | number, unknown>;
      if (typeof seg === 'number') container = checkIndex(cur, seg, d + 1) as unknown as Record<number, unknown>;
      else {
        if (!isPlainObject(cur)) fail(formatPath(path.slice(0, d)), `cannot set key "${seg}" inside ${what(cur)}`);
        container = cur as Record<string, unknown>;
      }
      if (container[seg] === undefined || container[seg] === null) {
        if (v === null) return; // deleting below a key that does not exist: nothing to delete, nothing created
        if (firstMissing === undefined && typeof seg === 'string') firstMissing = path.slice(0, d + 1);
        container[seg] = nextIsIndex ? [] : {};
        // the --set created this container: errors about it (an unknown key...) blame the --set
        origins.set(path.slice(0, d + 1), origin);
      }
      cur = container[seg];
    }
    const last = path[path.length - 1];
    if (typeof last === 'number') checkIndex(cur, last, path.length);
    else if (!isPlainObject(cur)) fail(formatPath(path.slice(0, -1)), `cannot set key "${last}" inside ${what(cur)}`);
    const exists = firstMissing === undefined && (typeof last === 'number' ? last < (cur as unknown[]).length : (cur as Record<string, unknown>)[last] !== undefined);
    if (adding && exists) fail(formatPath(path), `+ adds a key, but ${formatPath(path)} is already defined${describeOrigin(origins, path)}; drop the + to change it`);
    if (!adding && !exists && v !== null && typeof last === 'string') created.push({ path, from: (firstMissing ?? path).length - 1, set: n });
    origins.deleteSubtree(path);
    if (typeof last === 'number') {
      const list = cur as unknown[];
      if (v === null) {
        list.splice(last, 1);
        origins.shiftListDown(path.slice(0, -1), last + 1); // the elements after it move up, with their origins
      } else list[last] = v;
    } else {
      const map = cur as Record<string, unknown>;
      if (v === null) delete map[last];
      else map[last] = v;
    }
    if (v !== null) markAll(origins, path, v, origin);
  });
}

function markAll(origins: OriginMap, path: PathSeg[], v: unknown, origin: { set: number }): void {
  origins.set(path, origin);
  if (Array.isArray(v)) v.forEach((x, i) => markAll(origins, [...path, i], x, origin));
  else if (isPlainObject(v)) for (const [k, x] of Object.entries(v)) markAll(origins, [...path, k], x, origin);
}

function describeOrigin(origins: OriginMap, path: PathSeg[]): string {
  const o = origins.get(path);
  return o ? ` (${formatOrigin(o)})` : '';
}
