/**
 * Tiny inputs for the plugins that read files: one-image dataset trees in each layout, a tags
 * file, LPIPS/DISTS weights (deterministic hash-initialised tensors under the reference names,
 * as the metric parity tests make them). Written once into a temp dir, removed by `cleanup`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors } from '../../framework/api.js';
import { hashInitTensors } from '../parity/metrics/_hash-init.js';
import { rgbPattern, writeGrey, writeRgb } from '../unit/datasets/_tree.js';

export interface Fixtures {
  dir: string;
  ade20k: string;
  reallq: string;
  cityscapes: string;
  imageFolder: string;
  hq: string;
  lq: string;
  tagsFile: string;
  lpipsAlex: string;
  dists: string;
  /** The committed tiny diffusers folder (its unet/config.json sizes the model adapters attach to). */
  tinySd: string;
}

const W = 12;
const H = 8;

/** Label values 0..3 in a fixed pattern (ADE20K-style reduce-zero-label turns 0 into ignore). */
const label = Uint8Array.from({ length: W * H }, (_, i) => (i * 7) % 4);

export async function makeFixtures(): Promise<Fixtures> {
  const dir = mkdtempSync(join(tmpdir(), 'rass-contracts-'));
  const rgb = rgbPattern(W, H, 5);
  const pair = async (image: string, lab: string) => {
    await writeRgb(join(dir, image), rgb, W, H);
    await writeGrey(join(dir, lab), label, W, H);
  };
  await pair('ade/images/validation/ADE_val_1.png', 'ade/annotations/validation/ADE_val_1.png');
  await pair('reallq/images/a.png', 'reallq/annotations/a.png');
  await pair('city/leftImg8bit/val/aachen/aachen_0_leftImg8bit.png', 'city/gtFine/val/aachen/aachen_0_gtFine_labelTrainIds.png');
  await writeRgb(join(dir, 'folder/a.png'), rgb, W, H);
  await writeRgb(join(dir, 'hq/0001.png'), rgb, W, H);
  await writeRgb(join(dir, 'lq/0001x4.png'), rgbPattern(W / 4, H / 4, 9), W / 4, H / 4);
  writeFileSync(join(dir, 'tags.json'), JSON.stringify({ s0: ['sky', 'tree'] }));

  const metrics = join(process.cwd(), 'tests/fixtures/metrics');
  const lp = JSON.parse(readFileSync(join(metrics, 'lpips.json'), 'utf8')) as { cases: { net: string; tensor_names_sorted: string[]; shapes: Record<string, number[]> }[] };
  const alex = lp.cases.find((c) => c.net === 'alex');
  if (!alex) throw new Error('tests/fixtures/metrics/lpips.json has no alex case');
  writeSafetensors(join(dir, 'lpips-alex.safetensors'), hashInitTensors(alex.tensor_names_sorted, alex.shapes, true));
  const ds = JSON.parse(readFileSync(join(metrics, 'dists.json'), 'utf8')) as { tensor_names_sorted: string[]; shapes: Record<string, number[]>; alpha: number[]; beta: number[] };
  writeSafetensors(join(dir, 'dists.safetensors'), {
    ...hashInitTensors(ds.tensor_names_sorted, ds.shapes),
    alpha: { dtype: 'F32', shape: [1, ds.alpha.length, 1, 1], data: Float32Array.from(ds.alpha) },
    beta: { dtype: 'F32', shape: [1, ds.beta.length, 1, 1], data: Float32Array.from(ds.beta) },
  });
  return {
    dir,
    ade20k: join(dir, 'ade'),
    reallq: join(dir, 'reallq'),
    cityscapes: join(dir, 'city'),
    imageFolder: join(dir, 'folder'),
    hq: join(dir, 'hq'),
    lq: join(dir, 'lq'),
    tagsFile: join(dir, 'tags.json'),
    lpipsAlex: join(dir, 'lpips-alex.safetensors'),
    dists: join(dir, 'dists.safetensors'),
    tinySd: join(process.cwd(), 'tests/fixtures/backbones/tiny-sd'),
  };
}

export function cleanup(fx: Fixtures): void {
  rmSync(fx.dir, { recursive: true, force: true });
}
