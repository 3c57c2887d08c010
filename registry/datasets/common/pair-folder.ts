/** Pairing images with label maps by relative path and stem: the file layout shared by the folder datasets. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError, type PluginContext } from '../../../framework/api.js';
import { readTagsFile, type FileEntry } from './file-dataset.js';
import { IMAGE_EXTENSIONS, listImages, stem } from './image-io.js';

export const tagsFileOption = {
  tagsFile: { type: 'string', description: 'JSON file `{ "<sample id>": ["tag", ...] }`; default: tags are the class names present in the label map.' },
} as const;

/** The label file for `imageRel` under `labelDir`: same stem with one of the label extensions (first that exists). */
function findLabel(labelDir: string, relNoExt: string, exts: readonly string[]): string | undefined {
  for (const ext of exts) {
    const p = join(labelDir, relNoExt + ext);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export function withoutExt(rel: string): string {
  const s = stem(rel);
  const dir = rel.slice(0, rel.length - (rel.split(/[\\/]/).pop() ?? '').length);
  return dir + s;
}

/**
 * Pair every image under `imageDir` with its label under `labelDir` (same relative path and
 * stem, label extension `.png`). A missing label is an error naming the expected file, unless
 * `labelsOptional`.
 */
export function pairFolder(imageDir: string, labelDir: string | undefined, opts: { recursive?: boolean; labelsOptional?: boolean; imageSuffix?: string; labelSuffix?: string } = {}): FileEntry[] {
  const images = listImages(imageDir, 'image', { recursive: opts.recursive, suffix: opts.imageSuffix });
  if (labelDir && !existsSync(labelDir)) throw new UserError(`${labelDir}: label folder does not exist`);
  return images.map((rel) => {
    let key = withoutExt(rel);
    if (opts.imageSuffix) key = key.slice(0, key.length - stem(opts.imageSuffix).length);
    const id = stem(key);
    let label: string | undefined;
    if (labelDir) {
      const labelKey = key + (opts.labelSuffix ? stem(opts.labelSuffix) : '');
      label = findLabel(labelDir, labelKey, ['.png', '.PNG', ...IMAGE_EXTENSIONS.filter((e) => e !== '.png' && e !== '.jpg' && e !== '.jpeg')]);
      if (!label && !opts.labelsOptional) {
        throw new UserError(`${join(labelDir, labelKey + '.png')}: label file missing for image ${join(imageDir, rel)}`);
      }
    }
    return { id, image: join(imageDir, rel), ...(label ? { label } : {}) };
  });
}

export function tagsOf(opts: { tagsFile?: string }, ctx: PluginContext): Map<string, string[]> | undefined {
  return opts.tagsFile ? readTagsFile(ctx.resolvePath(opts.tagsFile)) : undefined;
}
