import { readdirSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { loadSharp } from './load-sharp.js';
import { UserError } from '../../../framework/api.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.bmp'];

export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Decode an image file to HWC RGB uint8 (alpha dropped, greyscale expanded). Unreadable files are UserErrors naming the file. */
export async function readRgb(file: string): Promise<DecodedImage> {
  try {
    const sharp = await loadSharp();
    const { data, info } = await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
  } catch (e) {
    throw new UserError(`${file}: cannot read image (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Decode a label map (single-channel PNG of class values) to HW uint8. Palette and RGB files
 * are refused: their pixel values are colours, not class indices, so silently using a channel
 * would produce wrong labels.
 */
export async function readLabel(file: string): Promise<DecodedImage> {
  let raw: { data: Buffer; info: { width: number; height: number; channels: number } };
  let palette: boolean;
  try {
    const sharp = await loadSharp();
    const img = sharp(file);
    palette = (await img.metadata()).isPalette === true;
    raw = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new UserError(`${file}: cannot read label map (${(e as Error).message})`, { cause: e });
  }
  const { data, info } = raw;
  const n = info.width * info.height;
  const out = new Uint8Array(n);
  const c = info.channels;
  // greyscale (+alpha) is the normal case; RGB is accepted only when every pixel is grey
  // (R=G=B), since palette/colour label maps hold colours, not class indices
  const colour = c >= 3;
  for (let i = 0; i < n; i++) {
    const v = data[i * c];
    if (colour && (data[i * c + 1] !== v || data[i * c + 2] !== v)) {
      throw new UserError(`${file}: label map must be a single-channel (greyscale) image of class indices, found ${c} channels with colours${palette ? ' (palette)' : ''} at pixel (x=${i % info.width}, y=${Math.floor(i / info.width)})`);
    }
    out[i] = v;
  }
  return { data: out, width: info.width, height: info.height };
}

/** Image files under `dir` (recursively when asked), sorted, as paths relative to `dir`. Missing folders are UserErrors. */
export function listImages(dir: string, what: string, opts: { recursive?: boolean; suffix?: string } = {}): string[] {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new UserError(`${dir}: ${what} folder does not exist`);
  }
  if (!st.isDirectory()) throw new UserError(`${dir}: ${what} path is not a folder`);
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (opts.recursive) walk(p);
      } else if (IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase()) && (!opts.suffix || e.name.endsWith(opts.suffix))) {
        out.push(relative(dir, p));
      }
    }
  };
  walk(dir);
  out.sort();
  return out;
}

export function stem(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  const ext = extname(base);
  return ext ? base.slice(0, -ext.length) : base;
}
