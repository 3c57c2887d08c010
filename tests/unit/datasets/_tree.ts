import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import type { PluginContext } from '../../../framework/api.js';

/** Helpers that write tiny dataset trees for the dataset tests. */
export function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `rass-${prefix}-`));
}

export function ctx(seed = 3): PluginContext {
  return {
    path: 'data.train',
    seed,
    log: { info: () => undefined, warn: () => undefined, debug: () => undefined },
    resolvePath: (p) => resolve(p),
    build: () => Promise.reject(new Error('not used')),
    services: {},
  };
}

/** A w x h RGB image whose pixel (x,y) is (x*10, y*10, seed) -- checkable after decoding. */
export function rgbPattern(w: number, h: number, seed: number): Uint8Array {
  const a = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) a.set([(x * 10) % 256, (y * 10) % 256, seed % 256], (y * w + x) * 3);
  return a;
}

export async function writeRgb(file: string, data: Uint8Array, w: number, h: number): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  await sharp(Buffer.from(data), { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
}

export async function writeGrey(file: string, data: Uint8Array, w: number, h: number): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  await sharp(Buffer.from(data), { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toFile(file);
}
