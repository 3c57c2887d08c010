import { relative } from 'node:path';
import { pathKey, type ConfigPath } from './paths.js';

/** Where a config value came from: a file position, or the n-th `--set` (1-based). */
export interface Origin {
  file?: string;
  line?: number;
  col?: number;
  set?: number;
  /**
   * For a `--set` value: the working directory it was given in (relative paths resolve
   * against it). Recorded with a run, so a resumed run resolves them as the first attempt did.
   */
  cwd?: string;
  /** Files that extended this one, nearest first (the chain that pulled it in). */
  via?: string[];
}

const rel = (f: string) => {
  const r = relative(process.cwd(), f);
  return r.startsWith('..') ? f : r;
};

/** `configs/a.yaml:7:3 (via configs/b.yaml)`, `--set #2`, or '' */
export function formatOrigin(o: Origin | undefined): string {
  if (!o) return '';
  if (o.set !== undefined) return `--set #${o.set}`;
  if (!o.file) return '';
  const pos = o.line !== undefined ? `:${o.line}:${o.col ?? 1}` : '';
  const via = o.via && o.via.length ? ` (via ${o.via.map(rel).join(' <- ')})` : '';
  return `${rel(o.file)}${pos}${via}`;
}

/**
 * Origins of every key/element of a config tree, keyed by path. Subtrees are replaced
 * wholesale when a value is replaced, so an origin never outlives its value.
 */
export class OriginMap {
  private readonly m = new Map<string, { path: ConfigPath; origin: Origin }>();

  set(path: ConfigPath, origin: Origin): void {
    this.m.set(pathKey(path), { path: [...path], origin });
  }

  get(path: ConfigPath): Origin | undefined {
    return this.m.get(pathKey(path))?.origin;
  }

  /** The origin of `path` or of its nearest ancestor that has one. */
  nearest(path: ConfigPath): Origin | undefined {
    for (let n = path.length; n >= 0; n--) {
      const o = this.get(path.slice(0, n));
      if (o) return o;
    }
    return undefined;
  }

  /** Remove `path` and everything below it. */
  deleteSubtree(path: ConfigPath): void {
    for (const [k, v] of this.m) if (isPrefix(path, v.path)) this.m.delete(k);
  }

  /** Copy entries of `other` under `path` (they already carry full paths). */
  copySubtree(other: OriginMap, path: ConfigPath): void {
    for (const v of other.m.values()) if (isPrefix(path, v.path)) this.m.set(pathKey(v.path), v);
  }

  /** Entries whose path starts with `from`, moved to start with `to` (list patching shifts indices). */
  remapSubtree(other: OriginMap, from: ConfigPath, to: ConfigPath): void {
    for (const v of other.m.values()) {
      if (isPrefix(from, v.path)) {
        const p = [...to, ...v.path.slice(from.length)];
        this.m.set(pathKey(p), { path: p, origin: v.origin });
      }
    }
  }

  /** Entries of list `list` at index >= `from` move down one index (an element before them was removed). */
  shiftListDown(list: ConfigPath, from: number): void {
    this.shiftList(list, from, -1);
  }

  /** Entries of list `list` at index >= `from` move up one index (an element is inserted at `from`). */
  shiftListUp(list: ConfigPath, from: number): void {
    this.shiftList(list, from, 1);
  }

  private shiftList(list: ConfigPath, from: number, by: number): void {
    const moved: { path: ConfigPath; origin: Origin }[] = [];
    for (const [k, v] of this.m) {
      const idx = v.path[list.length];
      if (isPrefix(list, v.path) && typeof idx === 'number' && idx >= from) {
        this.m.delete(k);
        moved.push({ path: [...list, idx + by, ...v.path.slice(list.length + 1)], origin: v.origin });
      }
    }
    for (const v of moved) this.m.set(pathKey(v.path), v);
  }

  withVia(file: string): OriginMap {
    const out = new OriginMap();
    for (const v of this.m.values()) out.m.set(pathKey(v.path), { path: v.path, origin: v.origin.file ? { ...v.origin, via: [...(v.origin.via ?? []), file] } : v.origin });
    return out;
  }

  clone(): OriginMap {
    const out = new OriginMap();
    for (const [k, v] of this.m) out.m.set(k, v);
    return out;
  }

  /** Every entry (also saved with a run, so a resume can restore where each value came from). */
  entries(): { path: ConfigPath; origin: Origin }[] {
    return [...this.m.values()];
  }
}

function isPrefix(prefix: ConfigPath, p: ConfigPath): boolean {
  if (p.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (p[i] !== prefix[i]) return false;
  return true;
}
