/**
 * What `tagger/*` plugins build: image-level tags for a sample, and for each tag the
 * dataset classes whose pixels make up that tag's mask (the Semantic-Constraint Loss
 * needs "tag -> class mask"; tags with no class have no mask).
 */
export interface Tagger {
  readonly type: string;
  /** Tags for a labelled image (label map HW with class indices, `ignoreIndex` skipped). */
  tagsFromLabel(label: Uint8Array, classNames: readonly string[], ignoreIndex: number): string[];
  /** Class indices whose union is the mask of `tag` (empty: the tag has no mask). */
  classesForTag(tag: string, classNames: readonly string[]): number[];
  /** Binary HW mask (1 = pixel belongs to the tag) or null when the tag maps to no class. */
  maskForTag(tag: string, label: Uint8Array, classNames: readonly string[]): Uint8Array | null;
}
