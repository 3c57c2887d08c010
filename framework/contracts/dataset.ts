/**
 * What `dataset/*` plugins build: indexed access to high-quality images with optional
 * semantic label maps and image-level tags. Datasets yield HQ only; LQ inputs are made
 * downstream by a degradation pipeline (paired-folder datasets additionally carry a stored LQ).
 * Implementations live in registry/datasets; this file holds only the shapes.
 */

/** One decoded sample. Images are HWC RGB uint8; labels are HW class indices with `ignoreIndex` for "no label". */
export interface SegSample {
  /** Stable identifier (file stem, or `shapes-<index>`). */
  readonly id: string;
  readonly height: number;
  readonly width: number;
  /** HWC RGB, length height*width*3. */
  readonly image: Uint8Array;
  /** HW class indices (0..classNames.length-1) or the dataset's ignoreIndex; absent for unlabeled images. */
  readonly label?: Uint8Array;
  /** Image-level tags (class names present, or a tags file's entry). */
  readonly tags: readonly string[];
  /** The image file the sample came from (for error messages and reports). */
  readonly file?: string;
  /** Paired datasets only: the stored low-quality image (HWC RGB) and its size. */
  readonly lq?: { readonly image: Uint8Array; readonly height: number; readonly width: number; readonly file?: string };
}

export interface SegDataset {
  /** Plugin name (`ade20k`, `cityscapes`, `shapes`, ...). */
  readonly type: string;
  readonly classNames: readonly string[];
  /** Label value meaning "not labelled" (255 everywhere in this framework). */
  readonly ignoreIndex: number;
  readonly length: number;
  /** Decode sample `index` (0-based). Malformed data throws a UserError naming the file and the problem. */
  get(index: number): Promise<SegSample>;
  /** Id and image file of every sample without decoding anything (lets a tagger check its coverage before training). */
  sampleIds?(): readonly { readonly id: string; readonly file?: string }[];
}
