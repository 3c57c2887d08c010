import { readFileSync } from 'node:fs';
import { UserError } from '../../../framework/api.js';
import type { SegDataset, SegSample } from '../../../framework/api.js';
import { readLabel, readRgb } from './image-io.js';

export const IGNORE_INDEX = 255;

/** How stored label values become class indices. */
export type LabelEncoding =
  /** Stored value v is class v; `ignore` stays ignore (Cityscapes labelTrainIds). */
  | 'identity'
  /** ADE20K: 0 means "other" -> ignore, v -> v-1 (MMSegmentation's reduce_zero_label). */
  | 'reduce-zero-label';

export interface FileEntry {
  id: string;
  image: string;
  /** Absent: the sample has no label map. */
  label?: string;
  lq?: string;
}

/** Map stored label values to class indices in place, refusing values outside the label space (names the file and value). */
export function encodeLabel(raw: Uint8Array, width: number, encoding: LabelEncoding, numClasses: number, ignoreIndex: number, file: string): Uint8Array {
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    let c: number;
    if (encoding === 'reduce-zero-label') c = v === 0 || v === ignoreIndex ? ignoreIndex : v - 1;
    else c = v;
    if (c !== ignoreIndex && c >= numClasses) {
      const stored = encoding === 'reduce-zero-label' ? `${v} (class ${c} after reduce-zero-label)` : String(v);
      throw new UserError(`${file}: label value ${stored} out of range at pixel (x=${i % width}, y=${Math.floor(i / width)}) -- this dataset has ${numClasses} classes (0..${numClasses - 1}) and ignore index ${ignoreIndex}`);
    }
    out[i] = c;
  }
  return out;
}

/** Class names present in a label map (ignore skipped), in class order. */
export function classNamesPresent(label: Uint8Array, classNames: readonly string[], ignoreIndex: number, minPixels = 1): string[] {
  const counts = new Uint32Array(256);
  for (let i = 0; i < label.length; i++) counts[label[i]]++;
  const out: string[] = [];
  for (let c = 0; c < classNames.length; c++) if (c !== ignoreIndex && counts[c] >= minPixels) out.push(classNames[c]);
  return out;
}

/** A tags file: JSON object `{ "<sample id>": ["tag", ...] }`. */
export function readTagsFile(file: string): Map<string, string[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: cannot read tags file (${(e as Error).message})`, { cause: e });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UserError(`${file}: tags file must be a JSON object mapping sample ids to arrays of tags`);
  }
  const out = new Map<string, string[]>();
  for (const [k, v] of Object.entries(parsed)) {
    if (!Array.isArray(v) || v.some((t) => typeof t !== 'string')) throw new UserError(`${file}: tags of "${k}" must be an array of strings`);
    out.set(k, v as string[]);
  }
  return out;
}

export interface FileDatasetOptions {
  type: string;
  classNames: readonly string[];
  entries: readonly FileEntry[];
  encoding: LabelEncoding;
  tags?: Map<string, string[]>;
  /** Where the entries came from, for the "empty dataset" error. */
  source: string;
}

/** A dataset of image files with optional label maps and stored LQ images; every check names the offending file. */
export class FileDataset implements SegDataset {
  readonly type: string;
  readonly classNames: readonly string[];
  readonly ignoreIndex = IGNORE_INDEX;
  readonly entries: readonly FileEntry[];
  private readonly encoding: LabelEncoding;
  private readonly tags?: Map<string, string[]>;
  private readonly options: FileDatasetOptions;

  constructor(o: FileDatasetOptions) {
    this.options = o;
    if (o.entries.length === 0) throw new UserError(`${o.source}: no images found`);
    this.type = o.type;
    this.classNames = o.classNames;
    this.entries = o.entries;
    this.encoding = o.encoding;
    this.tags = o.tags;
  }

  get length(): number {
    return this.entries.length;
  }

  sampleIds(): { id: string; file: string }[] {
    return this.entries.map((e) => ({ id: e.id, file: e.image }));
  }

  /** What a loader worker needs to rebuild this dataset (see recipe.ts). */
  recipe(): { kind: 'file'; options: FileDatasetOptions } {
    return { kind: 'file', options: this.options };
  }

  async get(index: number): Promise<SegSample> {
    if (!Number.isInteger(index) || index < 0 || index >= this.entries.length) {
      throw new RangeError(`${this.type}: index ${index} outside 0..${this.entries.length - 1}`);
    }
    const e = this.entries[index];
    const img = await readRgb(e.image);
    let label: Uint8Array | undefined;
    if (e.label) {
      const raw = await readLabel(e.label);
      if (raw.width !== img.width || raw.height !== img.height) {
        throw new UserError(`${e.label}: label map is ${raw.width}x${raw.height} but its image ${e.image} is ${img.width}x${img.height}`);
      }
      label = encodeLabel(raw.data, raw.width, this.encoding, this.classNames.length, this.ignoreIndex, e.label);
    }
    let lq: SegSample['lq'];
    if (e.lq) {
      const l = await readRgb(e.lq);
      lq = { image: l.data, width: l.width, height: l.height, file: e.lq };
    }
    let tags: string[];
    if (this.tags) tags = this.tags.get(e.id) ?? [];
    else tags = label ? classNamesPresent(label, this.classNames, this.ignoreIndex) : [];
    return { id: e.id, image: img.data, width: img.width, height: img.height, label, tags, file: e.image, ...(lq ? { lq } : {}) };
  }
}
