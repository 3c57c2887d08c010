import { accessSync, constants, mkdirSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UserError } from '../errors.js';

/**
 * Make sure `dir` is a directory this process can write, creating missing levels one at a
 * time. A bad location is the user's to fix, so it is a UserError naming `what` (e.g.
 * `runs_dir (configs/x.yaml:4:1)`) and the reason. Not `mkdirSync(..., { recursive: true })`:
 * on a path under /proc it retries ENOENT forever at 100% CPU, and on a path through a file
 * it throws a bare ENOTDIR.
 */
export function ensureWritableDir(dir: string, what: string): void {
  const abs = resolve(dir);
  const missing: string[] = [];
  let cur = abs;
  let st: Stats | undefined;
  for (;;) {
    try {
      st = statSync(cur);
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new UserError(`${what} ${abs}: cannot read ${cur} (${code ?? (e as Error).message})`);
    }
    missing.unshift(cur);
    const up = dirname(cur);
    if (up === cur) throw new UserError(`${what} ${abs}: no existing parent folder`);
    cur = up;
  }
  if (!st.isDirectory()) throw new UserError(`${what} ${abs}: ${cur} is a file, not a directory`);
  try {
    accessSync(cur, constants.W_OK);
  } catch {
    throw new UserError(`${what} ${abs}: ${cur === abs ? 'the folder' : `its parent ${cur}`} is not writable`);
  }
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && statSync(d).isDirectory()) continue; // made concurrently (parallel trials)
      throw new UserError(`${what} ${abs}: cannot create ${d} (${code ?? (e as Error).message})`);
    }
  }
}
