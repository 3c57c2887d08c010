import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/**
 * The package root of this framework (the directory of its package.json), found by walking
 * up from this module; the same from source (tsx) and from the compiled dist/ tree.
 * Data files that tsc does not copy (JSON tables, the native backend build) live relative to it.
 */
export function packageRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (true) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'rass') return (cached = dir);
      } catch {
        /* not ours; keep walking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('rass package root not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}
