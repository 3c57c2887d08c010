/**
 * Host work on a helper thread that the caller waits for synchronously. A compiled training
 * step's host plan (the Mask2Former criterion's matching and point selection) runs between two
 * TensorFlow functions while TensorFlow's threads sit idle; splitting the plan across two
 * threads uses the cores the step already owns. The planner is synchronous, so the result
 * cannot come back through the event loop: the helper posts it on a MessagePort and raises a
 * shared flag, the caller sleeps on the flag (Atomics.wait) and takes the message with
 * receiveMessageOnPort.
 *
 * The helper's module calls `serveSync(handler)`; it should import only tf-free code
 * (framework/host.js), so starting it costs tens of milliseconds, not a second copy of tfjs.
 */
import { MessageChannel, receiveMessageOnPort, Worker, workerData, type MessagePort } from 'node:worker_threads';

type Reply<R> = { ok: R } | { error: string };

/** flag[0]: 0 while a job is out, 1 when its reply was posted, 2 when the helper is gone */
interface Channel {
  port: MessagePort;
  flag: Int32Array;
}

/** A helper thread running `url`'s module (which calls `serveSync`), one job at a time. */
export class SyncWorker<J, R> {
  private busy = false;
  private dead: string | null = null;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly flag: Int32Array,
  ) {}

  /** Start the helper, or `{ error }` with the reason where a worker thread cannot start. */
  static start<J, R>(url: URL): SyncWorker<J, R> | { error: string } {
    try {
      const { port1, port2 } = new MessageChannel();
      const flag = new Int32Array(new SharedArrayBuffer(4));
      const channel: Channel = { port: port2, flag };
      const worker = new Worker(url, { workerData: channel, transferList: [port2] });
      // the helper never keeps the process alive, and the caller never blocks on a dead one
      worker.unref();
      port1.unref();
      const w = new SyncWorker<J, R>(worker, port1, flag);
      worker.on('error', (e) => (w.dead = e.message));
      worker.on('exit', (code) => (w.dead ??= `exited with code ${code}`));
      return w;
    } catch (e) {
      return { error: (e as Error).message };
    }
  }

  /**
   * Hand a job to the helper; the caller works on in parallel and collects it with `wait`.
   * `transfer`: buffers moved to the helper instead of copied (they are unusable here after).
   */
  post(job: J, transfer: ArrayBuffer[] = []): void {
    if (this.busy) throw new Error('SyncWorker: a job is already out (wait for it first)');
    if (this.dead) throw new Error(`SyncWorker: the helper thread is gone (${this.dead})`);
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage(job, transfer);
    this.busy = true;
  }

  /** Why the helper takes no more jobs (it errored, exited or did not answer in time), or null. */
  get gone(): string | null {
    return this.dead;
  }

  /** Block until the posted job's result arrives; rethrows the helper's error. */
  wait(timeoutMs = 120_000): R {
    if (!this.busy) throw new Error('SyncWorker: no job is out');
    this.busy = false;
    const until = Date.now() + timeoutMs;
    for (;;) {
      const got = receiveMessageOnPort(this.port) as { message: Reply<R> } | undefined;
      if (got) {
        if ('error' in got.message) throw new Error(`helper thread: ${got.message.error}`);
        return got.message.ok;
      }
      // a helper that exited or did not answer in time takes no more jobs (a late answer
      // would otherwise be taken for the next job's)
      if (Atomics.load(this.flag, 0) === 2) {
        this.dead = 'exited';
        throw new Error('SyncWorker: the helper thread exited');
      }
      const left = until - Date.now();
      if (left <= 0) {
        this.dead = `no answer in ${timeoutMs} ms`;
        throw new Error(`SyncWorker: no answer from the helper thread in ${timeoutMs} ms`);
      }
      Atomics.wait(this.flag, 0, 0, Math.min(left, 1000));
    }
  }

  dispose(): void {
    this.busy = false;
    this.port.close();
    void this.worker.terminate();
  }
}

/**
 * In a helper's module: answer every job with `handler(job)` (errors go back as messages).
 * `transfer` names the result's buffers to move back instead of copying them.
 */
export function serveSync<J, R>(handler: (job: J) => R, transfer: (result: R) => ArrayBuffer[] = () => []): void {
  const { port, flag } = workerData as Channel;
  // a helper that dies (out of memory, a crash) wakes the waiting caller instead of leaving it asleep
  process.on('exit', () => {
    Atomics.store(flag, 0, 2);
    Atomics.notify(flag, 0);
  });
  port.on('message', (job: J) => {
    let reply: Reply<R>;
    let moved: ArrayBuffer[] = [];
    try {
      const ok = handler(job);
      moved = transfer(ok);
      reply = { ok };
    } catch (e) {
      reply = { error: (e as Error).stack ?? String(e) };
    }
    port.postMessage(reply, moved);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  });
}

/** Shared helpers by module URL: a SyncWorker, or the reason it is unavailable. */
const helpers = new Map<string, SyncWorker<unknown, unknown> | { error: string }>();

/**
 * The process's helper thread running `url` (started on first use, shared by every caller),
 * or null where host work may not use a second thread (`threads` < 2) or the helper could not
 * start or failed (`label` names it in the one line logged then). Callers plan their own share
 * on the main thread and fall back to doing all of it there.
 */
export function sharedHelper<J, R>(url: URL, label: string, threads: number): SyncWorker<J, R> | null {
  if (threads < 2) return null;
  let h = helpers.get(url.href);
  if (!h) {
    h = SyncWorker.start<unknown, unknown>(url);
    if ('error' in h) process.stderr.write(`[rass] ${label}: no helper thread (${h.error}); working on the main thread\n`);
    helpers.set(url.href, h);
  }
  if ('error' in h) return null;
  // a helper that died between jobs (an error or exit while idle) is dropped here, so callers
  // never post to it and fail: the work goes back to the main thread, said once
  const gone = (h as SyncWorker<J, R>).gone;
  if (gone) {
    helperFailed(url, label, new Error(gone));
    return null;
  }
  return h as SyncWorker<J, R>;
}

/** After a helper's job failed: log it once, stop the helper, and hand out null from now on. */
export function helperFailed(url: URL, label: string, e: unknown): void {
  const h = helpers.get(url.href);
  if (h && !('error' in h)) h.dispose();
  const why = (e as Error).message?.split('\n')[0] ?? String(e);
  helpers.set(url.href, { error: why });
  process.stderr.write(`[rass] ${label}: the helper thread failed (${why}); working on the main thread\n`);
}

/**
 * Collect the job posted to a shared helper: its result, or null when the helper failed (then
 * `helperFailed` has logged it once and retired it, and the caller does that share itself).
 */
export function helperResult<J, R>(helper: SyncWorker<J, R>, url: URL, label: string): R | null {
  try {
    return helper.wait();
  } catch (e) {
    helperFailed(url, label, e);
    return null;
  }
}

/** 'running', 'not started' or 'unavailable: <why>' for the helper running `url`. */
export function helperState(url: URL): string {
  const h = helpers.get(url.href);
  return !h ? 'not started' : 'error' in h ? `unavailable: ${h.error}` : 'running';
}
