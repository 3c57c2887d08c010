/**
 * The public API's host-only part: no tfjs, so a helper thread (`serveSync`) can load it in
 * tens of milliseconds. Everything here is also exported from framework/api.ts.
 */
export { Rng } from './engine/rng.js';
export type { RngKey, RngState } from './engine/rng.js';
export { serveSync } from './engine/sync-worker.js';
export { roundHalfEven } from './engine/round-half-even.js';
