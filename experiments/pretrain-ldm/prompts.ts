/**
 * The default DDIM sample prompts: one per texture class of `dataset/shapes` with the
 * background tag `tagger/label-map` gives almost every image (its prompts list the classes
 * present, in class order), and the empty prompt (what classifier-free guidance contrasts).
 */
export const SHAPES_TEXTURE_PROMPTS: readonly string[] = Object.freeze([
  'background, stripes-h',
  'background, stripes-v',
  'background, checker',
  'background, dots',
  'background, stripes-diag',
  'background, grid',
  'background, noise',
  'background, zigzag',
  '',
]);
