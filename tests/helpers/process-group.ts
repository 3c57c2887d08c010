import { spawn, spawnSync } from 'node:child_process';

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
  /** after the leader exited: wait (up to `timeoutMs`, default 10 s) until no process of the group is left; throws, naming the survivors, if some are */
  groupGone: (timeoutMs?: number) => Promise<void>;
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
    async groupGone(timeoutMs = 10_000) {
      // living members of the group (a zombie waiting for its parent to reap it counts as gone)
      const living = () => {
        const ps = spawnSync('ps', ['-e', '-o', 'pgid=,pid=,stat=,args='], { encoding: 'utf8' });
        return (ps.stdout || '').split('\n').map((l) => l.trim()).filter((l) => {
          const [pgid, , stat] = l.split(/\s+/);
          return pgid === String(pid) && !stat.startsWith('Z');
        });
      };
      for (const t0 = Date.now(); Date.now() - t0 < timeoutMs; await sleep(50)) {
        try {
          process.kill(-pid, 0);
        } catch (e) {
          // ESRCH: no process left in the group; anything else (EPERM) means one is still there
          if ((e as NodeJS.ErrnoException).code === 'ESRCH') return;
        }
        if (living().length === 0) return;
      }
      // processes outlived the wait: the claim "the group is gone" is false, so fail loudly
      const left = living();
      if (left.length === 0) return;
      throw new Error(`process group ${pid} still has processes after ${timeoutMs} ms:\n${left.join('\n')}`);
    },
  };
}
