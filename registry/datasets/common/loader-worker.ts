/**
 * Loader worker thread: rebuilds the dataset from its recipe and serves (epoch, index)
 * requests with decoded, augmented samples; pixel buffers are transferred, not copied.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { augmentSample } from './loader.js';
import { fromRecipe, type DatasetRecipe } from './recipe.js';
import type { AugmentOptions } from './augment.js';

interface Init {
  recipe: DatasetRecipe;
  seed: number;
  augment?: AugmentOptions;
}
interface Request {
  id: number;
  epoch: number;
  index: number;
}

const init = workerData as Init;
const dataset = fromRecipe(init.recipe);
const port = parentPort;
if (!port) throw new Error('loader-worker must run in a worker thread');

port.on('message', (req: Request) => {
  void (async () => {
    try {
      const s = await dataset.get(req.index);
      const a = init.augment ? augmentSample(s, init.seed, req.epoch, req.index, init.augment, dataset.ignoreIndex) : s;
      const transfer: ArrayBuffer[] = [];
      for (const buf of [a.image, a.label, a.lq?.image]) if (buf && buf.buffer instanceof ArrayBuffer && !transfer.includes(buf.buffer)) transfer.push(buf.buffer);
      port.postMessage({ id: req.id, sample: a }, transfer);
    } catch (e) {
      port.postMessage({ id: req.id, error: (e as Error).message, user: (e as Error).name === 'UserError' });
    }
  })();
});
