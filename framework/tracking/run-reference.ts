import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { findRunDirs, resolveRunDir, summarizeRun } from './run-store.js';

/**
 * An earlier run named in a config (`from_run`-style options: an id, an id prefix, a
 * directory, or `latest:NAME` for the newest finished run with that name), resolved in the run store and checked: it must be FINISHED, and each named
 * artifact must exist. Errors name the option, the run and what is missing.
 */
export function finishedRun(selector: string, opts: { runsDir: string; cwd: string; where: string; artifacts?: readonly string[] }): { dir: string; runId: string; artifactsDir: string } {
  let dir: string;
  if (selector.startsWith('latest:')) {
    // the newest FINISHED run with that name (the config's `name`), e.g. latest:scr-shapes-tiny
    const name = selector.slice('latest:'.length);
    const found = findRunDirs(opts.runsDir)
      .map((d) => summarizeRun(d))
      .filter((s) => s.name === name && s.status === 'FINISHED')
      .sort((a, b) => (a.start ?? 0) - (b.start ?? 0))
      .pop();
    if (!found) throw new UserError(`${opts.where}: no FINISHED run named "${name}" in ${opts.runsDir}; run it first, or name a run by id`);
    dir = found.dir;
  } else {
    try {
      dir = resolveRunDir(opts.runsDir, selector, opts.cwd);
    } catch (e) {
      throw new UserError(`${opts.where}: ${(e as Error).message}`, { cause: e });
    }
  }
  const s = summarizeRun(dir);
  if (s.status !== 'FINISHED') {
    throw new UserError(`${opts.where}: run ${s.runId} is ${s.displayStatus}${s.statusMessage ? ` (${s.statusMessage})` : ''}, not FINISHED; finish it first (rass run --resume ${s.runId})`);
  }
  const artifactsDir = join(dir, 'artifacts');
  for (const a of opts.artifacts ?? []) {
    if (!existsSync(join(artifactsDir, a))) throw new UserError(`${opts.where}: run ${s.runId} has no artifact ${a} (in ${artifactsDir}); is it a run of the right experiment?`);
  }
  return { dir, runId: s.runId, artifactsDir };
}
