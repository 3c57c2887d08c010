import { definePlugin, UserError } from '../../framework/api.js';
import type { Tagger } from '../../framework/contracts/tagger.js';
import type { SegSample } from '../../framework/contracts/dataset.js';

/**
 * A few common open-vocabulary tags and the ADE20K classes whose masks they inherit
 * (RASS: "church" inherits "building"). Users extend or replace it with `synonyms`.
 */
export const DEFAULT_SYNONYMS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  church: ['building'],
  castle: ['building'],
  temple: ['building'],
  cathedral: ['building'],
  man: ['person'],
  woman: ['person'],
  child: ['person'],
  people: ['person'],
  automobile: ['car'],
  street: ['road'],
  ocean: ['sea'],
  forest: ['tree'],
  grassland: ['grass'],
  lawn: ['grass'],
  couch: ['sofa'],
  picture: ['painting'],
  window: ['windowpane'],
  cupboard: ['cabinet'],
  trash: ['ashcan'],
});

export interface LabelMapTaggerOptions {
  synonyms: Record<string, readonly string[]>;
  /** A class is a tag only when it covers at least this fraction of the labelled pixels. */
  minFraction: number;
}

/** Tags from label maps, and tag -> class resolution through a synonym / inheritance map. */
export class LabelMapTagger implements Tagger {
  readonly type = 'label-map';
  constructor(readonly o: LabelMapTaggerOptions) {}

  tagsFromLabel(label: Uint8Array, classNames: readonly string[], ignoreIndex: number): string[] {
    const counts = new Uint32Array(256);
    for (let i = 0; i < label.length; i++) counts[label[i]]++;
    let total = 0;
    for (let c = 0; c < 256; c++) if (c !== ignoreIndex) total += counts[c];
    const out: string[] = [];
    for (let c = 0; c < classNames.length; c++) {
      if (c !== ignoreIndex && counts[c] > 0 && counts[c] >= this.o.minFraction * total) out.push(classNames[c]);
    }
    return out;
  }

  /** The classes present in the sample's label map (no label: no tags). */
  tagsFor(sample: SegSample, classNames: readonly string[], ignoreIndex: number): string[] {
    return sample.label ? this.tagsFromLabel(sample.label, classNames, ignoreIndex) : [];
  }

  classesForTag(tag: string, classNames: readonly string[]): number[] {
    const found = new Set<number>();
    const seen = new Set<string>();
    const visit = (t: string): void => {
      const key = t.toLowerCase().trim();
      if (seen.has(key)) return; // cycles in a user map end here
      seen.add(key);
      const idx = classNames.findIndex((n) => n.toLowerCase() === key);
      if (idx >= 0) {
        found.add(idx);
        return;
      }
      for (const parent of this.o.synonyms[key] ?? []) visit(parent);
    };
    visit(tag);
    return [...found].sort((a, b) => a - b);
  }

  maskForTag(tag: string, label: Uint8Array, classNames: readonly string[]): Uint8Array | null {
    const classes = this.classesForTag(tag, classNames);
    if (classes.length === 0) return null;
    const member = new Uint8Array(256);
    for (const c of classes) member[c] = 1;
    const out = new Uint8Array(label.length);
    for (let i = 0; i < label.length; i++) out[i] = member[label[i]];
    return out;
  }
}

export const labelMapTagger = definePlugin({
  kind: 'tagger',
  name: 'label-map',
  description: "Tags = class names present in the label map; other tags inherit classes' masks through a synonym map ('church' -> 'building')",
  schema: {
    type: 'object',
    properties: {
      synonyms: {
        type: 'object',
        additionalProperties: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
        default: {},
        description: 'tag -> class name(s) (or other tags) whose mask it inherits; merged over the built-in map.',
      },
      useDefaultSynonyms: { type: 'boolean', default: true },
      minFraction: { type: 'number', minimum: 0, maximum: 1, default: 0 },
    },
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const synonyms: Record<string, readonly string[]> = opts.useDefaultSynonyms ? { ...DEFAULT_SYNONYMS } : {};
    for (const [k, v] of Object.entries(opts.synonyms as Record<string, string | string[]>)) {
      const list = typeof v === 'string' ? [v] : v;
      if (list.length === 0) throw new UserError(`${ctx.path}.synonyms.${k}: give at least one class name`);
      synonyms[k.toLowerCase().trim()] = list;
    }
    return new LabelMapTagger({ synonyms, minFraction: opts.minFraction });
  },
});
