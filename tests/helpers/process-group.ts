import { spawn } from 'node:child_process';

/**
 * A command started in its own process group, as a terminal starts a job: tests send signals
 * to the whole group (Ctrl-C, a lost machine) and wait for every process in it to be gone.
 */
export interface GroupJob {
  pid: number;
  /** stdout so far */
  out: () => string;
  /** resolves with the leader's exit code */
  exited: Promise<number | null>;
  /** poll `ready()` every 20 ms until true or `timeoutMs` (then returns false) */
  waitFor: (ready: () => boolean, timeoutMs: number) => Promise<boolean>;
  /** signal the whole group */
  signal: (sig: NodeJS.Signals) => void;
  /** after the leader exited: wait (up to 10 s) until no process of the group is left */
  groupGone: () => Promise<void>;
}

export function startGroup(args: string[], opts: { cwd: string; env?: Record<string, string> }): GroupJob {
  const child = spawn(process.execPath, args, { cwd: opts.cwd, env: { ...process.env, CI: 'true', ...opts.env }, detached: true });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.resume();
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const pid = child.pid!;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  return {
    pid,
    out: () => out,
    exited,
    async waitFor(ready, timeoutMs) {
      for (const t0 = Date.now(); Date.now() - t0 < timeoutMs; await sleep(20)) if (ready()) return true;
      return ready();
    },
    signal: (sig) => process.kill(-pid, sig),
    async groupGone() {
      for (const t0 = Date.now(); Date.now() - t0 < 10_000; await sleep(50)) {
        try {
          process.kill(-pid, 0);
        } catch {
          return;
        }
      }
    },
  };
}
