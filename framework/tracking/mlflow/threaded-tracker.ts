/**
 * The MLflow tracker the runner gets: an MlflowTracker running in a worker thread. The
 * training loop's thread only posts a message per append (microseconds); everything else
 * (journal reads, JSON, HTTP, retries, state writes) happens on the worker's thread.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RunTracker } from '../tracker.js';
import type { MlflowClientOptions } from './client.js';
import type { MlflowTrackerOptions } from './tracker.js';

/** Everything the worker needs, as plain data (structured-clonable). */
export interface ThreadedTrackerInit {
  client: Omit<MlflowClientOptions, 'fetch' | 'onRetry'>;
  tracker: Omit<MlflowTrackerOptions, 'client' | 'log' | 'warn' | 'resolveRunDir'>;
}
export type ToWorker = { op: 'append' } | { op: 'flush' | 'close'; id: number; timeoutMs?: number };
export type ToMain = { op: 'ready'; error?: string } | { op: 'log'; message: string } | { op: 'done'; id: number; error?: string };

/**
 * worker.js beside this module when compiled. From source (tsx, used by tests during
 * development) a worker does not inherit tsx's loader on Node 20, so a tiny bootstrap
 * registers it and then imports worker.ts.
 */
function createWorker(init: ThreadedTrackerInit): Worker {
  const js = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return new Worker(js, { workerData: init });
  const ts = new URL('./worker.ts', import.meta.url).href;
  const boot = `(async () => { const { register } = await import('tsx/esm/api'); register(); await import(${JSON.stringify(ts)}); })().catch((e) => { throw e; });`;
  return new Worker(boot, { eval: true, workerData: init });
}

export class ThreadedMlflowTracker implements RunTracker {
  readonly name = 'mlflow';
  private readonly worker: Worker;
  private nextId = 0;
  private readonly pending = new Map<number, (error?: string) => void>();
  private closed = false;
  private exited = false;

  private constructor(worker: Worker, private readonly log: (m: string) => void) {
    this.worker = worker;
    worker.on('message', (m: ToMain) => {
      if (m.op === 'log') this.log(m.message);
      else if (m.op === 'done') {
        this.pending.get(m.id)?.(m.error);
        this.pending.delete(m.id);
      }
    });
    worker.on('error', (e) => this.log(`tracker thread failed: ${e.message}`));
    worker.on('exit', () => {
      this.exited = true;
      for (const done of this.pending.values()) done('tracker thread exited');
      this.pending.clear();
    });
    // Only pending flush/close calls keep the process alive, not the idle thread.
    worker.unref();
  }

  /** Start the worker; rejects with the reason when the tracker cannot start (e.g. the run is shipped elsewhere). */
  static async start(init: ThreadedTrackerInit, log: (m: string) => void = (m) => process.stderr.write(`[mlflow] ${m}\n`)): Promise<ThreadedMlflowTracker> {
    const worker = createWorker(init);
    const ready = await new Promise<ToMain & { op: 'ready' }>((resolve, reject) => {
      const onMsg = (m: ToMain) => {
        if (m.op === 'ready') {
          worker.off('message', onMsg);
          resolve(m);
        }
      };
      worker.on('message', onMsg);
      worker.once('error', reject);
    });
    if (ready.error) {
      await worker.terminate();
      throw new Error(ready.error);
    }
    return new ThreadedMlflowTracker(worker, log);
  }

  onAppend(): void {
    if (!this.closed && !this.exited) this.worker.postMessage({ op: 'append' } satisfies ToWorker);
  }

  private call(op: 'flush' | 'close', timeoutMs?: number): Promise<void> {
    if (this.exited) return Promise.resolve();
    const id = this.nextId++;
    this.worker.ref();
    return new Promise<void>((resolve) => {
      this.pending.set(id, () => {
        if (this.pending.size <= 1) this.worker.unref();
        resolve();
      });
      this.worker.postMessage({ op, id, timeoutMs } satisfies ToWorker);
    });
  }

  flush(opts?: { timeoutMs?: number }): Promise<void> {
    return this.call('flush', opts?.timeoutMs);
  }

  async close(opts?: { timeoutMs?: number }): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.call('close', opts?.timeoutMs);
    await this.worker.terminate();
  }
}
