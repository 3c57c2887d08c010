import { randomBytes } from 'node:crypto';

/**
 * A run id: `YYYYMMDD-HHMMSS-<6 hex>` in UTC. Ids sort by start time, and the random
 * suffix keeps two runs started in the same second (sweeps, parallel jobs) apart.
 */
export function newRunId(now = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const date = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}`;
  const time = `${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  return `${date}-${time}-${randomBytes(3).toString('hex')}`;
}

export const RUN_ID_PATTERN = /^\d{8}-\d{6}-[0-9a-f]{6}$/;
