import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { definePlugin, UserError } from '../../../framework/api.js';
import type { SegSample } from '../../../framework/api.js';
import { SynonymTagger, synonymProperties, synonymsFromOptions } from '../common/synonyms.js';
import { parseTagsFile, type TagsTable } from './parse.js';

/**
 * Tags from a file a tagging model produced offline, filtered by score (>= threshold), in file
 * order, duplicates (case-insensitive) dropped. A sample is looked up by its id, then by its image
 * file's name (RAM scripts often key by file name); a sample in neither is a UserError naming the file.
 */
export class TagsFileTagger extends SynonymTagger {
  readonly type = 'tags-file';
  constructor(readonly file: string, readonly table: TagsTable, readonly threshold: number, synonyms: Readonly<Record<string, readonly string[]>>) {
    super(synonyms);
  }

  checkSamples(samples: readonly { id: string; file?: string }[]): void {
    const missing = samples.filter((s) => !this.table.has(s.id) && !(s.file && this.table.has(basename(s.file))));
    if (missing.length) {
      const list = missing.slice(0, 5).map((s) => `"${s.id}"`).join(', ');
      throw new UserError(`${this.file}: no tags for ${missing.length} of ${samples.length} images (${list}${missing.length > 5 ? ', ...' : ''}); the file lists ${this.table.size} images`);
    }
  }

  tagsFor(sample: SegSample): string[] {
    const entry = this.table.get(sample.id) ?? (sample.file ? this.table.get(basename(sample.file)) : undefined);
    if (!entry) {
      const some = [...this.table.keys()].slice(0, 3).map((k) => `"${k}"`).join(', ');
      throw new UserError(`${this.file}: no tags for image "${sample.id}"${sample.file ? ` (${sample.file})` : ''}; the file lists ${this.table.size} images${some ? `, e.g. ${some}` : ''}`);
    }
    const seen = new Set<string>();
    const out: string[] = [];
    for (const t of entry) {
      const key = t.tag.toLowerCase();
      if (t.score < this.threshold || seen.has(key)) continue;
      seen.add(key);
      out.push(t.tag);
    }
    return out;
  }
}

export const tagsFileTagger = definePlugin({
  kind: 'tagger',
  name: 'tags-file',
  description: 'tags per image from a JSON or CSV file written by a tagging model (e.g. RAM), kept when score >= threshold',
  docs: 'JSON: { "<image id>": ["tag", ...] | { "tag": score } | [{ "tag", "score" }] }. CSV: header `id,tag,score`, one row per tag. `threshold` defaults to 0.68 (RASS uses RAM at 0.68); tags without a score count as 1. Images are matched by sample id, then by image file name.',
  schema: {
    type: 'object',
    required: ['file'],
    properties: {
      ...synonymProperties,
      file: { type: 'string', minLength: 1, description: 'path to the tags file (relative to the config file)' },
      threshold: { type: 'number', default: 0.68, description: 'keep tags with score >= threshold' },
    },
    additionalProperties: false,
  } as const,
  create(o, ctx) {
    const file = ctx.resolvePath(o.file);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UserError(`${ctx.path}.file: cannot read tags file ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
    }
    return new TagsFileTagger(file, parseTagsFile(file, text), o.threshold, synonymsFromOptions(o, ctx));
  },
});
