/**
 * Tags files written offline by a tagging model (RAM, ...): image id -> tags with scores.
 *
 * JSON (`.json`, or any file starting with `{`), one entry per image id, each one of
 *   ["tag", ...]                          (score 1 each)
 *   { "tag": score, ... }
 *   [{ "tag": "x", "score": 0.9 }, ...]   (score optional: 1)
 * CSV (anything else): a header naming the columns `id` and `tag` (optionally `score`), then one
 * row per (image, tag); fields may be double-quoted ("" escapes a quote). Comment lines start with #.
 * Every malformed piece is a UserError `FILE:LINE: reason`.
 */
import { UserError } from '../../../framework/api.js';

export interface ScoredTag {
  readonly tag: string;
  readonly score: number;
}

/** image id -> its tags in file order. */
export type TagsTable = Map<string, ScoredTag[]>;

const lineAt = (text: string, pos: number) => text.slice(0, Math.max(0, pos)).split('\n').length;

function checkScore(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${where}: score must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function checkTag(v: unknown, where: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw new UserError(`${where}: a tag must be a non-empty string, got ${JSON.stringify(v)}`);
  return v.trim();
}

/**
 * Where JSON text first goes wrong: Node 20's JSON.parse messages do not always carry a position, so
 * after JSON.parse rejects a file this scanner walks the grammar to find the offset and the reason.
 */
export function jsonSyntaxError(text: string): { pos: number; reason: string } | null {
  let i = 0;
  const fail = (reason: string): never => {
    throw Object.assign(new Error(reason), { pos: i });
  };
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (c === '{') {
          if (text[i] !== '"') fail(text[i] === close ? 'trailing comma' : 'expected a quoted key');
          string();
          ws();
          if (text[i] !== ':') fail('expected ":" after the key');
          i++;
        } else if (text[i] === ']') fail('trailing comma');
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === close) {
          i++;
          return;
        }
        fail(`expected "," or "${close}"`);
      }
    }
    if (c === '"') return string();
    const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) fail(i >= text.length ? 'unexpected end of file' : `unexpected ${JSON.stringify(c)}`);
    i += (m as RegExpExecArray)[0].length;
  };
  const string = (): void => {
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\n') fail('line break inside a string');
      i += text[i] === '\\' ? 2 : 1;
    }
    if (i >= text.length) fail('unterminated string');
    i++;
  };
  try {
    value();
    ws();
    if (i < text.length) fail('unexpected text after the JSON value');
    return null;
  } catch (e) {
    return { pos: (e as { pos: number }).pos, reason: (e as Error).message };
  }
}

export function parseJsonTags(file: string, text: string): TagsTable {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const at = jsonSyntaxError(text);
    throw new UserError(`${file}:${at ? lineAt(text, at.pos) : 1}: not valid JSON (${at?.reason ?? (e as Error).message})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new UserError(`${file}:1: a JSON tags file must be an object mapping image ids to tags`);
  }
  const table: TagsTable = new Map();
  for (const [id, v] of Object.entries(data as Record<string, unknown>)) {
    // the line of the id's key, for messages about its value
    const where = `${file}:${lineAt(text, text.indexOf(JSON.stringify(id)))}: image "${id}"`;
    const tags: ScoredTag[] = [];
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        if (typeof x === 'string') tags.push({ tag: checkTag(x, `${where} [${i}]`), score: 1 });
        else if (typeof x === 'object' && x !== null && !Array.isArray(x)) {
          const o = x as Record<string, unknown>;
          tags.push({ tag: checkTag(o.tag, `${where} [${i}].tag`), score: o.score === undefined ? 1 : checkScore(o.score, `${where} [${i}].score`) });
        } else throw new UserError(`${where} [${i}]: expected a tag string or { "tag": ..., "score": ... }, got ${JSON.stringify(x)}`);
      });
    } else if (typeof v === 'object' && v !== null) {
      for (const [t, s] of Object.entries(v as Record<string, unknown>)) tags.push({ tag: checkTag(t, where), score: checkScore(s, `${where} "${t}"`) });
    } else {
      throw new UserError(`${where}: expected a list of tags or an object tag -> score, got ${JSON.stringify(v)}`);
    }
    table.set(id, tags);
  }
  return table;
}

/** Split one CSV line (RFC 4180 quoting, no line breaks inside fields). */
function csvFields(line: string, where: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new UserError(`${where}: unterminated quoted field`);
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += line[i++];
      }
      if (i < line.length && line[i] !== ',') throw new UserError(`${where}: unexpected text after a quoted field`);
    } else {
      const end = line.indexOf(',', i);
      field = end < 0 ? line.slice(i) : line.slice(i, end);
      i = end < 0 ? line.length : end;
    }
    out.push(field.trim());
    if (i >= line.length) return out;
    i++; // the comma
  }
}

export function parseCsvTags(file: string, text: string): TagsTable {
  const lines = text.split(/\r?\n/);
  let header: string[] | undefined;
  let col = { id: -1, tag: -1, score: -1 };
  const table: TagsTable = new Map();
  lines.forEach((raw, k) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${file}:${k + 1}`;
    const f = csvFields(line, where);
    if (!header) {
      header = f.map((h) => h.toLowerCase());
      col = { id: header.indexOf('id'), tag: header.indexOf('tag'), score: header.indexOf('score') };
      if (col.id < 0 || col.tag < 0) throw new UserError(`${where}: the CSV header must name the columns "id" and "tag" (and optionally "score"), got ${JSON.stringify(f)}`);
      return;
    }
    if (f.length !== header.length) throw new UserError(`${where}: ${f.length} fields, the header has ${header.length}`);
    const id = f[col.id];
    if (id === '') throw new UserError(`${where}: empty image id`);
    const tag = checkTag(f[col.tag], where);
    let score = 1;
    if (col.score >= 0) {
      score = Number(f[col.score]);
      if (f[col.score] === '' || !Number.isFinite(score)) throw new UserError(`${where}: score must be a number, got "${f[col.score]}"`);
    }
    const list = table.get(id) ?? [];
    list.push({ tag, score });
    table.set(id, list);
  });
  if (!header) throw new UserError(`${file}:1: empty tags file (expected a header "id,tag,score" and rows)`);
  return table;
}

export function parseTagsFile(file: string, text: string): TagsTable {
  const json = /\.json$/i.test(file) || (!/\.csv$/i.test(file) && text.trimStart().startsWith('{'));
  return json ? parseJsonTags(file, text) : parseCsvTags(file, text);
}
