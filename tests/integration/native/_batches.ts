import { buildNode } from '../../../framework/config/index.js';
import type { Degradation, SegDataset } from '../../../framework/api.js';
import { BatchSource, type ImageBatch } from '../../../experiments/common/data.js';
import { fullRegistry } from '../../helpers/experiments.js';

const quiet = { info: () => {}, warn: () => {}, debug: () => {} };

/** `steps` training batches of 64 procedural shapes at size x size, Gaussian-noise degraded; the dataset rides along as `.dataset`. */
export async function noisyShapeBatches(steps: number, batch: number, size: number): Promise<ImageBatch[] & { dataset: SegDataset }> {
  const registry = fullRegistry();
  const build = <T>(node: Record<string, unknown>) => buildNode<T>(node as never, registry, { seed: 0, log: quiet });
  const dataset = await build<SegDataset>({ type: 'dataset/shapes', length: 64, height: size, width: size });
  const degradation = await build<Degradation>({ type: 'degradation/pipeline', stages: [{ id: 'noise', type: 'degradation/noise', gaussian_prob: 1, sigma_range: [5, 20] }] });
  const source = new BatchSource({ dataset, degradation, seed: 0, split: 'train', randomCrop: false, where: 'test' });
  const batches: ImageBatch[] = [];
  for (let s = 0; s < steps; s++) batches.push(await source.batch(source.trainIndices(s, batch)));
  return Object.assign(batches, { dataset });
}
