import { join } from 'node:path';
import { definePlugin, UserError } from '../../../framework/api.js';
import { FileDataset, type FileEntry } from '../common/file-dataset.js';
import { listImages, stem } from '../common/image-io.js';
import { withoutExt } from '../common/pair-folder.js';

export const pairedFolder = definePlugin({
  kind: 'dataset',
  name: 'paired-folder',
  description: 'HQ/LQ image pairs for restoration evaluation (DIV2K-style `0001x4.png` or RealSR-style `_HR`/`_LR4` suffixes)',
  schema: {
    type: 'object',
    properties: {
      hq: { type: 'string', description: 'Folder of high-quality images.' },
      lq: { type: 'string', description: 'Folder of low-quality images.' },
      hqSuffix: { type: 'string', default: '', description: 'Stem suffix of HQ files removed to get the pair key (RealSR: "_HR").' },
      lqSuffix: { type: 'string', default: '', description: 'Stem suffix of LQ files removed to get the pair key (DIV2K x4: "x4"; RealSR: "_LR4").' },
      recursive: { type: 'boolean', default: false },
    },
    required: ['hq', 'lq'],
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const hqDir = ctx.resolvePath(opts.hq);
    const lqDir = ctx.resolvePath(opts.lq);
    const key = (rel: string, suffix: string): string | undefined => {
      const k = withoutExt(rel);
      if (!suffix) return k;
      return k.endsWith(suffix) ? k.slice(0, k.length - suffix.length) : undefined;
    };
    const lqByKey = new Map<string, string>();
    for (const rel of listImages(lqDir, 'LQ image', { recursive: opts.recursive })) {
      const k = key(rel, opts.lqSuffix);
      if (k !== undefined) lqByKey.set(k, join(lqDir, rel));
    }
    const entries: FileEntry[] = [];
    for (const rel of listImages(hqDir, 'HQ image', { recursive: opts.recursive })) {
      const k = key(rel, opts.hqSuffix);
      if (k === undefined) continue;
      const lq = lqByKey.get(k);
      if (!lq) throw new UserError(`${join(lqDir, k + opts.lqSuffix)}.*: LQ image missing for HQ image ${join(hqDir, rel)}`);
      entries.push({ id: stem(k), image: join(hqDir, rel), lq });
    }
    return new FileDataset({ type: 'paired-folder', classNames: [], entries, encoding: 'identity', source: hqDir });
  },
});
