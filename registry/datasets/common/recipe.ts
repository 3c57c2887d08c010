import type { SegDataset } from '../../../framework/api.js';
import { FileDataset, type FileDatasetOptions } from './file-dataset.js';
import { ShapesDataset, type ShapesOptions } from '../shapes/shapes.js';

/**
 * Plain, structured-clonable data from which a worker thread rebuilds a dataset (paths already
 * resolved), so decoding and augmentation can run off the main thread.
 */
export type DatasetRecipe = { kind: 'file'; options: FileDatasetOptions } | { kind: 'shapes'; options: ShapesOptions };

export interface HasRecipe {
  recipe(): DatasetRecipe;
}

export function hasRecipe(d: SegDataset): d is SegDataset & HasRecipe {
  return typeof (d as Partial<HasRecipe>).recipe === 'function';
}

export function fromRecipe(r: DatasetRecipe): SegDataset {
  return r.kind === 'file' ? new FileDataset(r.options) : new ShapesDataset(r.options);
}
