import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { definePlugin, UserError, type PluginContext } from '../../framework/api.js';
import { ADE20K_CLASSES, CITYSCAPES_CLASSES } from './class-names.js';
import { FileDataset, readTagsFile, type FileEntry, type LabelEncoding } from './file-dataset.js';
import { IMAGE_EXTENSIONS, listImages, stem } from './image-io.js';
import { ShapesDataset, SHAPES_CLASSES } from './shapes.js';

const tagsFileOption = {
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

function withoutExt(rel: string): string {
  const s = stem(rel);
  const dir = rel.slice(0, rel.length - (rel.split(/[\\/]/).pop() ?? '').length);
  return dir + s;
}

/**
 * Pair every image under `imageDir` with its label under `labelDir` (same relative path and
 * stem, label extension `.png`). A missing label is an error naming the expected file, unless
 * `labelsOptional`.
 */
function pairFolder(imageDir: string, labelDir: string | undefined, opts: { recursive?: boolean; labelsOptional?: boolean; imageSuffix?: string; labelSuffix?: string } = {}): FileEntry[] {
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

function tagsOf(opts: { tagsFile?: string }, ctx: PluginContext): Map<string, string[]> | undefined {
  return opts.tagsFile ? readTagsFile(ctx.resolvePath(opts.tagsFile)) : undefined;
}

export const ade20k = definePlugin({
  kind: 'dataset',
  name: 'ade20k',
  description: 'ADE20K SceneParsing (ADEChallengeData2016 layout): 150 classes, reduce-zero-label (0 -> ignore 255)',
  schema: {
    type: 'object',
    properties: {
      root: { type: 'string', description: 'The ADEChallengeData2016 folder (holding images/ and annotations/).' },
      split: { enum: ['training', 'validation'], default: 'validation' },
      ...tagsFileOption,
    },
    required: ['root'],
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const root = ctx.resolvePath(opts.root);
    const entries = pairFolder(join(root, 'images', opts.split), join(root, 'annotations', opts.split));
    return new FileDataset({ type: 'ade20k', classNames: ADE20K_CLASSES, entries, encoding: 'reduce-zero-label', tags: tagsOf(opts, ctx), source: join(root, 'images', opts.split) });
  },
});

export const reallq = definePlugin({
  kind: 'dataset',
  name: 'reallq',
  description: "RealLQ real-world low-quality images in ADE20K's label space (150 classes, reduce-zero-label by default); folder layout configurable",
  schema: {
    type: 'object',
    properties: {
      root: { type: 'string' },
      images: { type: 'string', default: 'images', description: 'Image folder, relative to root.' },
      labels: { type: 'string', default: 'annotations', description: 'Label-map folder, relative to root (same stems as the images, .png).' },
      labelEncoding: { enum: ['reduce-zero-label', 'identity'], default: 'reduce-zero-label', description: 'reduce-zero-label: stored ADE20K values 1..150 (0 = other); identity: stored 0..149, 255 = ignore.' },
      recursive: { type: 'boolean', default: true },
      ...tagsFileOption,
    },
    required: ['root'],
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const root = ctx.resolvePath(opts.root);
    const entries = pairFolder(join(root, opts.images), join(root, opts.labels), { recursive: opts.recursive });
    return new FileDataset({ type: 'reallq', classNames: ADE20K_CLASSES, entries, encoding: opts.labelEncoding as LabelEncoding, tags: tagsOf(opts, ctx), source: join(root, opts.images) });
  },
});

export const cityscapes = definePlugin({
  kind: 'dataset',
  name: 'cityscapes',
  description: 'Cityscapes fine annotations (leftImg8bit + gtFine *_labelTrainIds.png): 19 classes, 255 = ignore',
  schema: {
    type: 'object',
    properties: {
      root: { type: 'string', description: 'Folder holding leftImg8bit/ and gtFine/.' },
      split: { enum: ['train', 'val', 'test'], default: 'val' },
      ...tagsFileOption,
    },
    required: ['root'],
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const root = ctx.resolvePath(opts.root);
    const imageDir = join(root, 'leftImg8bit', opts.split);
    const entries = pairFolder(imageDir, join(root, 'gtFine', opts.split), {
      recursive: true,
      imageSuffix: '_leftImg8bit.png',
      labelSuffix: '_gtFine_labelTrainIds.png',
    });
    return new FileDataset({ type: 'cityscapes', classNames: CITYSCAPES_CLASSES, entries, encoding: 'identity', tags: tagsOf(opts, ctx), source: imageDir });
  },
});

export const imageFolder = definePlugin({
  kind: 'dataset',
  name: 'image-folder',
  description: 'Any folder of images, optionally with a folder of label maps (same stems, .png, class indices, 255 = ignore)',
  schema: {
    type: 'object',
    properties: {
      images: { type: 'string', description: 'Image folder.' },
      labels: { type: 'string', description: 'Label-map folder; omit for unlabeled images.' },
      classNames: { type: 'array', items: { type: 'string' }, description: 'Class names in label order; default: the 150 ADE20K classes.' },
      labelEncoding: { enum: ['identity', 'reduce-zero-label'], default: 'identity' },
      labelsOptional: { type: 'boolean', default: false, description: 'Allow images without a label file (their samples carry no label).' },
      recursive: { type: 'boolean', default: false },
      ...tagsFileOption,
    },
    required: ['images'],
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const imageDir = ctx.resolvePath(opts.images);
    const labelDir = opts.labels ? ctx.resolvePath(opts.labels) : undefined;
    const entries = pairFolder(imageDir, labelDir, { recursive: opts.recursive, labelsOptional: opts.labelsOptional });
    return new FileDataset({
      type: 'image-folder',
      classNames: opts.classNames ?? ADE20K_CLASSES,
      entries,
      encoding: opts.labelEncoding as LabelEncoding,
      tags: tagsOf(opts, ctx),
      source: imageDir,
    });
  },
});

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

export const shapes = definePlugin({
  kind: 'dataset',
  name: 'shapes',
  description: 'Procedural textured-shapes segmentation set (the embedded default): deterministic by seed, any size, no files',
  docs: `Each image has a textured background and 2..maxObjects objects of random shape (ellipse, polygon, ring, bar). The class of an
object is its *texture* (fine stripes, checker, dots, ...), not its shape or colour, so the fine detail that degradations destroy is exactly
what a segmenter has to see. Classes: ${SHAPES_CLASSES.join(', ')}.`,
  schema: {
    type: 'object',
    properties: {
      length: { type: 'integer', minimum: 1, default: 1000 },
      height: { type: 'integer', minimum: 16, default: 128 },
      width: { type: 'integer', minimum: 16, default: 128 },
      numClasses: { type: 'integer', minimum: 2, maximum: SHAPES_CLASSES.length, default: SHAPES_CLASSES.length, description: 'Classes used (the first N names; class 0 is the background).' },
      maxObjects: { type: 'integer', minimum: 1, default: 5 },
      seed: { type: 'integer', description: "Dataset seed (default: the run's seed). Sample i depends only on (seed, i)." },
    },
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    return new ShapesDataset({ ...opts, seed: opts.seed ?? ctx.seed });
  },
});
