import type { SegSample } from '../../../framework/api.js';
import { SynonymTagger } from '../common/synonyms.js';

export interface LabelTagsOptions {
  synonyms: Readonly<Record<string, readonly string[]>>;
  /** A class is a tag only when it covers at least this fraction of the labelled pixels. */
  minFraction: number;
}

/**
 * Tags = the classes present in the sample's ground truth (class order; ignore pixels neither
 * count nor become tags), for training and oracle evaluation. An unlabelled sample has no tags.
 */
export class LabelTagsTagger extends SynonymTagger {
  readonly type: string = 'label-tags';
  readonly minFraction: number;
  constructor(o: LabelTagsOptions) {
    super(o.synonyms);
    this.minFraction = o.minFraction;
  }

  tagsFromLabel(label: Uint8Array, classNames: readonly string[], ignoreIndex: number): string[] {
    const counts = new Uint32Array(256);
    for (let i = 0; i < label.length; i++) counts[label[i]]++;
    let total = 0;
    for (let c = 0; c < 256; c++) if (c !== ignoreIndex) total += counts[c];
    const out: string[] = [];
    for (let c = 0; c < classNames.length; c++) {
      if (c !== ignoreIndex && counts[c] > 0 && counts[c] >= this.minFraction * total) out.push(classNames[c]);
    }
    return out;
  }

  tagsFor(sample: SegSample, classNames: readonly string[], ignoreIndex: number): string[] {
    return sample.label ? this.tagsFromLabel(sample.label, classNames, ignoreIndex) : [];
  }
}
