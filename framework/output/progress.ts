/**
 * Progress display for long work. On a terminal: one line redrawn in place with a bar,
 * rate and ETA. Otherwise (a pipe, a log file, CI=true): a plain line at most every
 * `intervalMs` (10 s by default) and one at the end, so logs stay readable.
 */
import type { ProgressHandle } from '../contracts/experiment.js';

export interface ProgressOptions {
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** force plain lines (default: not a TTY, or CI set) */
  plain?: boolean;
  intervalMs?: number;
  now?: () => number;
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function createProgress(label: string, total: number, opts: ProgressOptions = {}): ProgressHandle {
  const stream = opts.stream ?? process.stderr;
  const plain = opts.plain ?? (!stream.isTTY || (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'));
  const interval = opts.intervalMs ?? (plain ? 10_000 : 100);
  const now = opts.now ?? Date.now;
  const t0 = now();
  let pos = 0;
  let lastDraw = -Infinity;
  let finished = false;
  let lastInfo = '';

  const line = (): string => {
    const el = (now() - t0) / 1000;
    const rate = el > 0 ? pos / el : 0;
    const eta = rate > 0 && total > 0 ? (total - pos) / rate : NaN;
    const pct = total > 0 ? Math.min(100, (100 * pos) / total) : 0;
    const stats = `${pos}/${total} ${pct.toFixed(0)}% ${rate.toFixed(1)}/s elapsed ${fmtDuration(el)}${finished ? '' : ` eta ${fmtDuration(eta)}`}${lastInfo ? ` ${lastInfo}` : ''}`;
    if (plain) return `${label}: ${stats}`;
    const width = 24;
    const filled = total > 0 ? Math.round((width * pos) / total) : 0;
    return `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${stats}`;
  };
  const draw = (force: boolean) => {
    const t = now();
    if (!force && t - lastDraw < interval) return;
    lastDraw = t;
    if (plain) stream.write(line() + '\n');
    else {
      const cols = stream.columns ?? 120;
      stream.write('\r' + line().slice(0, cols - 1).padEnd(cols - 1));
    }
  };
  return {
    tick(n = 1, info) {
      pos += n;
      if (info !== undefined) lastInfo = info;
      draw(false);
    },
    update(done, info) {
      pos = done;
      if (info !== undefined) lastInfo = info;
      draw(false);
    },
    done(info) {
      if (finished) return;
      finished = true;
      if (info !== undefined) lastInfo = info;
      draw(true);
      if (!plain) stream.write('\n');
    },
  };
}
