import { encodePng } from '../../framework/api.js';

/** A picture for an artifact: HWC RGB uint8. */
export interface Picture {
  readonly pixels: Uint8Array;
  readonly height: number;
  readonly width: number;
}

/**
 * Tile equally sized HWC RGB tiles into rows x cols with a `gap`-pixel white border;
 * `tiles[r][c]` (a missing tile stays white).
 */
export function tileGrid(tiles: readonly (readonly Uint8Array[])[], h: number, w: number, gap = 2): { rgb: Uint8Array; width: number; height: number } {
  const rows = tiles.length;
  const cols = Math.max(...tiles.map((r) => r.length));
  const width = cols * w + (cols + 1) * gap;
  const height = rows * h + (rows + 1) * gap;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  tiles.forEach((row, r) =>
    row.forEach((tile, c) => {
      const x0 = gap + c * (w + gap);
      const y0 = gap + r * (h + gap);
      for (let y = 0; y < h; y++) rgb.set(tile.subarray(y * w * 3, (y + 1) * w * 3), ((y0 + y) * width + x0) * 3);
    }),
  );
  return { rgb, width, height };
}

/** Rows x columns of equally sized pictures with a 2-pixel white gutter, as PNG. */
export function gridPng(rows: readonly (readonly Picture[])[]): Buffer {
  const first = rows[0]?.[0] as Picture;
  const g = tileGrid(rows.map((r) => r.map((p) => p.pixels)), first.height, first.width);
  return encodePng(g.rgb, g.width, g.height, 3);
}

/** A heat colour (black-red-yellow-white) for v in [0, 1]. */
function heat(v: number): [number, number, number] {
  const t = Math.max(0, Math.min(1, v)) * 3;
  return [Math.min(1, t), Math.max(0, Math.min(1, t - 1)), Math.max(0, Math.min(1, t - 2))].map((c) => Math.round(c * 255)) as [number, number, number];
}

/**
 * `map` (h x w, any scale) upsampled to the picture's size (nearest) and blended over it:
 * the picture at half brightness plus the map's heat colour, normalised to its maximum.
 */
export function overlay(p: Picture, map: Float32Array, h: number, w: number): Picture {
  let max = 0;
  for (const v of map) max = Math.max(max, v);
  const out = new Uint8Array(p.pixels.length);
  for (let y = 0; y < p.height; y++) {
    const my = Math.min(h - 1, Math.floor((y * h) / p.height));
    for (let x = 0; x < p.width; x++) {
      const mx = Math.min(w - 1, Math.floor((x * w) / p.width));
      const c = heat(max > 0 ? (map[my * w + mx] as number) / max : 0);
      const i = (y * p.width + x) * 3;
      for (let k = 0; k < 3; k++) out[i + k] = Math.round(0.4 * (p.pixels[i + k] as number) + 0.6 * (c[k] as number));
    }
  }
  return { pixels: out, height: p.height, width: p.width };
}

/** A binary mask as a white-on-black picture. */
export function maskPicture(mask: Uint8Array, height: number, width: number): Picture {
  const out = new Uint8Array(height * width * 3);
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.fill(255, i * 3, i * 3 + 3);
  return { pixels: out, height, width };
}

/** A fixed colour per class (golden-angle hues), black for ignored pixels. */
export function classColour(c: number): [number, number, number] {
  const h = (c * 137.508) % 360;
  const s = 0.65;
  const v = c % 2 ? 0.95 : 0.75;
  const f = (n: number) => {
    const k = (n + h / 60) % 6;
    return Math.round(255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}

/** A label map as a colour picture. */
export function labelPicture(label: Uint8Array, height: number, width: number, ignoreIndex: number): Picture {
  const out = new Uint8Array(height * width * 3);
  for (let i = 0; i < label.length; i++) {
    const c = label[i] as number;
    if (c === ignoreIndex) continue;
    out.set(classColour(c), i * 3);
  }
  return { pixels: out, height, width };
}
