/**
 * The lock that keeps two processes from writing one run directory: `lock` is created
 * exclusively and holds the owner's pid, host and start time. A lock whose process is gone
 * (same host, pid not alive) is stale: it is taken over with a warning, so a run killed with
 * SIGKILL can be resumed without manual cleanup.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../errors.js';

export interface LockInfo {
  pid: number;
  host: string;
  /** ISO time the lock was taken */
  started: string;
}

export function readLock(runDir: string): LockInfo | undefined {
  const f = join(runDir, 'lock');
  if (!existsSync(f)) return undefined;
  try {
    return JSON.parse(readFileSync(f, 'utf8')) as LockInfo;
  } catch {
    return undefined; // half-written lock: its writer died while creating it
  }
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed process stays signalable as a zombie until it is reaped: it holds nothing.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (macOS): trust kill(0)
  }
}

/** 'held' (a live process on this host), 'stale' (its process is gone), 'foreign' (another host: cannot tell), or 'none'. */
export function lockState(runDir: string): 'none' | 'held' | 'stale' | 'foreign' {
  if (!existsSync(join(runDir, 'lock'))) return 'none';
  const info = readLock(runDir);
  if (!info) return 'stale';
  if (info.host !== hostname()) return 'foreign';
  return isProcessAlive(info.pid) ? 'held' : 'stale';
}

export class RunLock {
  private released = false;
  private constructor(readonly file: string) {}

  static acquire(runDir: string, warn: (m: string) => void = () => {}): RunLock {
    const file = join(runDir, 'lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx');
        const info: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
        writeSync(fd, JSON.stringify(info));
        closeSync(fd);
        return new RunLock(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const state = lockState(runDir);
        const info = readLock(runDir);
        if (state === 'stale') {
          warn(`run ${runDir}: taking over a stale lock (process ${info?.pid ?? '?'} on ${info?.host ?? '?'} is gone)`);
          rmSync(file, { force: true });
          continue;
        }
        const who = info ? `process ${info.pid} on ${info.host} since ${info.started}` : 'another process';
        throw new UserError(`run ${runDir} is locked by ${who}; two writers on one run are not allowed${state === 'foreign' ? ` (if that process is gone, delete ${file})` : ''}`);
      }
    }
    throw new UserError(`run ${runDir}: could not take the lock ${file}`);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    rmSync(this.file, { force: true });
  }
}
