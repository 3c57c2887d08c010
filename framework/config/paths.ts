/**
 * Config paths: arrays of keys / list indices. Internally a path is keyed by its JSON
 * encoding (unambiguous even for keys that contain dots, as sweep specs' do); for people it
 * is printed dotted with [i] for indices, e.g. `experiment.losses[1].weight`.
 */
export type PathSeg = string | number;
export type ConfigPath = readonly PathSeg[];

export const pathKey = (p: ConfigPath): string => JSON.stringify(p);

export function formatPath(p: ConfigPath): string {
  let s = '';
  for (const seg of p) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) s += s ? `.${seg}` : seg;
    else s += `[${JSON.stringify(seg)}]`;
  }
  return s || '(root)';
}

/** Parse `a.b[0].c` / `a["x.y"]` into segments. */
export function parsePath(text: string): PathSeg[] {
  const out: PathSeg[] = [];
  const re = /([^.[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|(\.)/gy;
  let m: RegExpExecArray | null;
  let last = 0;
  let expectKey = true;
  while ((m = re.exec(text))) {
    last = re.lastIndex;
    if (m[1] !== undefined) {
      if (!expectKey) throw new Error(`bad path "${text}"`);
      out.push(m[1]);
      expectKey = false;
    } else if (m[2] !== undefined) {
      out.push(Number(m[2]));
      expectKey = false;
    } else if (m[3] !== undefined) {
      out.push(JSON.parse(`"${m[3]}"`) as string);
      expectKey = false;
    } else {
      if (expectKey) throw new Error(`bad path "${text}"`);
      expectKey = true;
    }
  }
  if (last !== text.length || out.length === 0 || expectKey) throw new Error(`bad path "${text}"`);
  return out;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function getAt(root: unknown, path: ConfigPath): { found: boolean; value?: unknown } {
  let cur: unknown = root;
  for (const seg of path) {
    if (typeof seg === 'number') {
      if (!Array.isArray(cur) || seg >= cur.length) return { found: false };
      cur = cur[seg];
    } else {
      if (!isPlainObject(cur) || !(seg in cur)) return { found: false };
      cur = cur[seg];
    }
  }
  return { found: true, value: cur };
}
