/**
 * sharp (libvips) loaded on first use. Importing it loads a native library and checks its
 * version (with semver, ~50 modules): ~60 ms that every `rass` process and sweep trial worker
 * paid at start-up though most never touch an image file.
 */
import type sharpFn from 'sharp';

export type Sharp = typeof sharpFn;

let loading: Promise<Sharp> | undefined;

export function loadSharp(): Promise<Sharp> {
  return (loading ??= import('sharp').then((m) => m.default));
}
