import type { SegTargets } from '../../../framework/api.js';

/** One image's mask-classification targets: the classes present and one binary mask per class. */
export interface ImageTargets {
  classes: number[];
  /** [K, H, W] 0/1 masks on the host (ignore pixels are 0 in every mask; the matcher and the point labels read them), or null when K = 0. */
  data: Float32Array | null;
  height: number;
  width: number;
}

/** Split each image's label map into per-class binary masks (Mask2Former's semantic dataset mapper). */
export function maskTargets(t: SegTargets, numClasses: number): ImageTargets[] {
  const { batch, height: H, width: W, labels, ignoreIndex } = t;
  const out: ImageTargets[] = [];
  for (let b = 0; b < batch; b++) {
    const lab = labels.subarray(b * H * W, (b + 1) * H * W);
    const present = new Uint8Array(256);
    for (let i = 0; i < lab.length; i++) present[lab[i]] = 1;
    const classes: number[] = [];
    for (let c = 0; c < numClasses; c++) if (c !== ignoreIndex && present[c]) classes.push(c);
    if (classes.length === 0) {
      out.push({ classes, data: null, height: H, width: W });
      continue;
    }
    const data = new Float32Array(classes.length * H * W);
    classes.forEach((c, k) => {
      for (let i = 0; i < lab.length; i++) if (lab[i] === c) data[k * H * W + i] = 1;
    });
    out.push({ classes, data, height: H, width: W });
  }
  return out;
}
