import type { SegSample } from './dataset.js';

/**
 * What `tagger/*` plugins build: the text prompt of a sample as a list of tags, and for each
 * tag the dataset classes whose pixels make up that tag's mask (the Semantic-Constraint Loss
 * needs "tag -> class mask"; tags with no class have no mask and are left out of it).
 * Implementations: registry/taggers (label tags, tags files from a tagging model such as RAM,
 * a fixed prompt, no prompt).
 */
export interface Tagger {
  readonly type: string;
  /**
   * The tags of `sample`, in prompt order (the prompt is the tags joined by ", ").
   * A tagger that needs data it lacks for this sample (a tags file without the image id)
   * throws a UserError naming the file and the id.
   */
  tagsFor(sample: SegSample, classNames: readonly string[], ignoreIndex: number): string[];
  /**
   * Optional: check up front that `tagsFor` will work for these samples (a tags file covers every
   * image), throwing a UserError that names what is missing; called before training starts.
   */
  checkSamples?(samples: readonly { readonly id: string; readonly file?: string }[]): void;
  /** Class indices whose union is the mask of `tag` (empty: the tag has no mask). */
  classesForTag(tag: string, classNames: readonly string[]): number[];
  /** Binary HW mask (1 = pixel belongs to the tag) or null when the tag maps to no class. */
  maskForTag(tag: string, label: Uint8Array, classNames: readonly string[]): Uint8Array | null;
}
