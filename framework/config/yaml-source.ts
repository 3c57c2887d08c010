import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, isAlias, isPair, type Node, type Document } from 'yaml';
import { OriginMap, type Origin } from './origins.js';
import { ConfigError } from './errors.js';
import type { ConfigPath } from './paths.js';
import { formatPath } from './paths.js';

/**
 * Merge directives written as YAML tags in a child config:
 *   key: !delete        (or `key: ~`)  drop the inherited key
 *   key: !replace {...}                 replace an inherited map instead of deep-merging it
 *   stages: !patch [{id: blur1, ...}]   merge list elements into the inherited list by `id`
 * and one that inlines another file:
 *   degradation: !include ../_base_/degradations/mild.yaml   (the file's mapping, with its own
 *                extends resolved, replaces the key; origins point into that file)
 */
export const DELETE = Symbol('config.delete');
export type Directive = 'replace' | 'patch';

export interface ParsedYaml {
  value: unknown;
  origins: OriginMap;
  directives: Map<string, Directive>;
  /** `!include` sites: the config path and the file named there (relative to this file). */
  includes: { path: ConfigPath; file: string; origin: Origin }[];
}

const KNOWN_TAGS = new Set(['!delete', '!replace', '!patch', '!include']);

export function parseYamlText(text: string, file: string, opts: { nullDeletes?: boolean } = {}): ParsedYaml {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true }) as Document.Parsed;
  const pos = (offset: number | undefined): Origin => {
    if (offset === undefined) return { file };
    const p = lc.linePos(offset);
    return { file, line: p.line, col: p.col };
  };
  if (doc.errors.length) {
    throw new ConfigError(doc.errors.map((e) => ({ origin: pos(e.pos?.[0]), path: '', message: `YAML syntax error: ${e.message.split('\n')[0]}` })));
  }
  const unknownTags = doc.warnings.filter((w) => !/Unresolved tag: (!delete|!replace|!patch|!include)\b/.test(w.message));
  if (unknownTags.length) {
    throw new ConfigError(unknownTags.map((w) => ({ origin: pos(w.pos?.[0]), path: '', message: `YAML: ${w.message.split('\n')[0]} (known tags: !delete, !replace, !patch, !include)` })));
  }
  const origins = new OriginMap();
  const directives = new Map<string, Directive>();
  const includes: ParsedYaml['includes'] = [];
  const nullDeletes = opts.nullDeletes ?? true;

  const convert = (node: Node | null | undefined, path: ConfigPath): unknown => {
    if (node == null) return nullDeletes ? DELETE : null;
    if (isAlias(node)) return convert(node.resolve(doc) as Node, path);
    const tag = (node as { tag?: string }).tag;
    if (tag && KNOWN_TAGS.has(tag)) {
      if (tag === '!delete') return DELETE;
      if (tag === '!include') {
        const where = pos(node.range?.[0]);
        if (!isScalar(node) || typeof node.value !== 'string' || node.value.trim() === '') {
          throw new ConfigError([{ origin: where, path: formatPath(path), message: '!include takes a file path, e.g. `!include ../_base_/degradations/mild.yaml`' }]);
        }
        if (path.length === 0) throw new ConfigError([{ origin: where, path: '', message: 'a whole file cannot be !include-d: use `extends:`' }]);
        includes.push({ path, file: node.value, origin: where });
        // an included mapping replaces what a base set here (a pipeline is not merged stage by stage)
        directives.set(JSON.stringify(path), 'replace');
        return {};
      }
      if (tag === '!replace' && !isMap(node) && !isSeq(node)) throw new ConfigError([{ origin: pos(node.range?.[0]), path: formatPath(path), message: '!replace applies to a map or a list' }]);
      if (tag === '!patch' && !isSeq(node)) throw new ConfigError([{ origin: pos(node.range?.[0]), path: formatPath(path), message: '!patch applies to a list (of elements with `id`)' }]);
      directives.set(JSON.stringify(path), tag === '!replace' ? 'replace' : 'patch');
    }
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const p = [...path, k];
        origins.set(p, pos((pair.key as Node | null)?.range?.[0]));
        out[k] = convert(pair.value as Node | null, p);
      }
      return out;
    }
    if (isSeq(node)) {
      return node.items.map((item, i) => {
        const p = [...path, i];
        origins.set(p, pos((item as Node | null)?.range?.[0]));
        const v = convert(item as Node | null, p);
        return v === DELETE ? null : v; // a null list element is just null
      });
    }
    if (isScalar(node)) {
      if (node.value === null) return nullDeletes ? DELETE : null;
      return node.value;
    }
    return null;
  };
  origins.set([], { file, line: 1, col: 1 });
  const value = convert(doc.contents as Node | null, []);
  return { value: value === DELETE ? {} : value, origins, directives, includes };
}

export function readYamlFile(file: string, referencedFrom?: Origin, referencedAt = 'extends'): ParsedYaml {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError([{ origin: referencedFrom, path: referencedFrom ? referencedAt : '', message: `cannot read config file ${file}: ${code === 'ENOENT' ? 'no such file' : code ?? (e as Error).message}` }]);
  }
  // An empty file would load as {} and fail later with "missing required key" and no file name.
  if (parseDocument(text).contents === null) {
    throw new ConfigError([{ origin: referencedFrom ?? { file }, path: referencedFrom ? 'extends' : '', message: `${referencedFrom ? `config file ${file}` : 'the file'} is empty (a config file is a YAML mapping)` }]);
  }
  return parseYamlText(text, file);
}
