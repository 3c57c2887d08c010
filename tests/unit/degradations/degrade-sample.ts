/**
 * Degrade one synthetic image with a preset and return a digest of the result. Imported by the
 * determinism test, and run as a separate process by it (`node degrade-sample.js PRESET SEED INDEX`)
 * to show that another process (worker) produces the same bytes.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import { plugins } from '../../../registry/degradations/index.js';
import { buildDegradationFile } from '../../../registry/degradations/common/build.js';

export async function degradeDigest(preset: string, seed: number, index: number): Promise<string> {
  await useBackend('wasm');
  const d = await buildDegradationFile(`configs/_base_/degradations/${preset}.yaml`, { plugins });
  const r = Rng.derive(123, 'image');
  const x = tf.tensor4d(r.fillUniform(new Float32Array(40 * 56 * 3)) as Float32Array, [1, 40, 56, 3]);
  const rec: Record<string, unknown>[] = [{}];
  const y = await d.apply(x, { rng: [Rng.derive(seed, 'degradation', index)], record: rec });
  const h = createHash('sha256').update(Buffer.from((y.dataSync() as Float32Array).buffer)).update(JSON.stringify(rec)).digest('hex');
  tf.dispose([x, y]);
  return h;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [preset, seed, index] = process.argv.slice(2);
  degradeDigest(preset, Number(seed), Number(index)).then((h) => process.stdout.write(`DIGEST ${h}\n`));
}
