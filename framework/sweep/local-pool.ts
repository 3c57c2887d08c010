/**
 * The local executor's worker processes. Each worker (`rass _trial-worker`) is a long-lived
 * child with an IPC channel that runs one trial at a time; the pool starts workers on demand
 * (the sweep bounds how many trials run at once), reuses idle ones, and replaces a worker
 * whenever reuse could carry state from one trial into the next:
 * - the trial did not exit cleanly (failed, killed, or crashed the worker);
 * - it left tfjs tensors allocated;
 * - the worker has run `max_trials_per_worker` trials (1 = a fresh process per trial).
 * A worker that dies mid-trial (native crash, out of memory, SIGKILL) fails only that trial.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import type { CliCommand } from '../contracts/executor.js';
import type { FromWorker, ToWorker, TrialRequest } from './trial-protocol.js';

export interface LocalExecutorOptions {
  /** trials a worker runs before it is replaced (default: no limit; 1 = a fresh process per trial) */
  max_trials_per_worker?: number;
  /** V8 heap limit of each worker in MiB (node --max-old-space-size): a runaway trial fails alone */
  memory_mb?: number;
  /** extra node / V8 flags for each worker process */
  node_args?: string[];
  /** wall-clock limit per trial in seconds: the trial is stopped (SIGTERM, then SIGKILL) and fails */
  trial_timeout_s?: number;
}

/** After a timed-out trial is asked to stop, how long it may take to checkpoint before its worker is killed. */
const TIMEOUT_GRACE_MS = 5000;

/** Options of the local executor (besides `type`), as JSON Schema properties. */
export const localExecutorProperties = {
  max_trials_per_worker: { type: 'integer', minimum: 1, description: 'trials a worker process runs before it is replaced (1 = a fresh process per trial)' },
  memory_mb: { type: 'integer', minimum: 16, description: 'V8 heap limit per worker process in MiB' },
  node_args: { type: 'array', items: { type: 'string', pattern: '^--' }, description: 'extra node / V8 flags for each worker process, e.g. [--single-threaded]' },
  trial_timeout_s: { type: 'number', exclusiveMinimum: 0, description: 'wall-clock limit per trial: it is stopped like SIGTERM (checkpoint kept), killed if it does not stop within 5 s, and FAILED; --retry-failed resumes it' },
} as const;

export interface PoolJob {
  trialId: string;
  logFile: string;
  request: TrialRequest;
}

export interface PoolResult {
  exitCode: number | null;
  /** the signal that ended the worker when it died during the trial */
  signal: NodeJS.Signals | null;
  /** the worker died during the trial (no result was reported) */
  crashed: boolean;
  /** the crash was V8 running out of heap (the worker's output says so) */
  outOfMemory?: boolean;
  /** the trial ran past `trial_timeout_s` and was stopped */
  timedOut?: boolean;
  error?: string;
  leakedTensors?: number;
}

interface WorkerSlot {
  child: ChildProcess;
  ready: Promise<boolean>;
  trials: number;
  job?: { job: PoolJob; resolve: (r: PoolResult) => void };
  /** the end of what the worker printed during the current trial (to name the cause of a crash) */
  outputTail: string;
  retiring: boolean;
  closed: Promise<void>;
}

export class WorkerPool {
  private readonly idle: WorkerSlot[] = [];
  /** workers started ahead of the trials (while the sweep plans), not yet given a trial */
  private readonly warming: WorkerSlot[] = [];
  private readonly all = new Set<WorkerSlot>();

  constructor(
    private readonly cfg: {
      /** the CLI a worker runs (`_trial-worker` is appended) */
      cli: CliCommand;
      cwd: string;
      env: Record<string, string | undefined>;
      options: LocalExecutorOptions;
      /** output of a worker while it runs no trial (startup problems) */
      stray: (text: string) => void;
    },
  ) {}

  /** Run one trial on an idle worker or a new one; resolves when it has ended, however it ended. */
  async run(job: PoolJob): Promise<PoolResult> {
    // an idle worker (ready), else one started ahead (maybe still loading), else a new one
    const slot = await this.takeWorker();
    if (!(await slot.ready)) {
      await slot.closed; // its output is all in
      const said = slot.outputTail.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
      const how = slot.child.signalCode ?? `exit code ${slot.child.exitCode}`;
      return { exitCode: slot.child.exitCode, signal: slot.child.signalCode, crashed: true, error: `the trial worker failed to start (${how})${said ? `: ${said}` : ''}` };
    }
    const s = slot;
    let timedOut = false;
    const timers: NodeJS.Timeout[] = [];
    const limit = this.cfg.options.trial_timeout_s;
    const result = await new Promise<PoolResult>((resolve) => {
      s.job = { job, resolve };
      s.outputTail = '';
      s.trials++;
      s.child.send({ type: 'trial', trialId: job.trialId, logFile: job.logFile, request: job.request } satisfies ToWorker);
      if (limit) {
        timers.push(setTimeout(() => {
          timedOut = true;
          appendFileSync(job.logFile, `\n=== trial timeout: ${limit} s of wall time used; stopping it (SIGTERM)\n`);
          if (s.child.connected) s.child.send({ type: 'stop', signal: 'SIGTERM' } satisfies ToWorker);
          // a trial that blocks its event loop never sees the message
          timers.push(setTimeout(() => s.child.kill('SIGKILL'), TIMEOUT_GRACE_MS));
        }, limit * 1000));
      }
    }).finally(() => timers.forEach(clearTimeout));
    if (timedOut) result.timedOut = true;
    const max = this.cfg.options.max_trials_per_worker ?? 0;
    if (!result.crashed) {
      const dirty = result.exitCode !== 0 || (result.leakedTensors ?? 0) > 0 || (max > 0 && s.trials >= max);
      if (dirty) this.retire(s);
      else this.idle.push(s);
    }
    return result;
  }

  /**
   * An idle worker, else one started ahead (maybe still loading), else a new one. A waiting
   * worker that died meanwhile (killed while idle) is dropped and the next one taken.
   */
  private async takeWorker(): Promise<WorkerSlot> {
    for (;;) {
      const slot = this.idle.pop() ?? this.warming.shift();
      if (!slot) return this.spawnWorker();
      if (!(await slot.ready)) return slot; // it failed to start: the trial that takes it reports why
      if (slot.child.exitCode === null && slot.child.signalCode === null && slot.child.connected) return slot;
      this.retire(slot); // it died while waiting: take the next
    }
  }


  /**
   * Start `n` workers now (their start-up, the CLI, plugins and tfjs loading, overlaps the
   * sweep's planning); the first trials take them. A worker that fails to start is reported
   * by the trial that takes it, as for a worker started on demand.
   */
  prespawn(n: number): void {
    for (let i = 0; i < n; i++) this.warming.push(this.spawnWorker());
  }

  /** the executor options the workers run with */
  get options(): LocalExecutorOptions {
    return this.cfg.options;
  }

  /** Trials running now. */
  get running(): number {
    return [...this.all].filter((s) => s.job).length;
  }

  /** Stop every running trial as `sig` would stop `rass run` (journaled KILLED, checkpoint kept). */
  stopRunning(sig: 'SIGINT' | 'SIGTERM'): void {
    for (const s of this.all) if (s.job && s.child.connected) s.child.send({ type: 'stop', signal: sig } satisfies ToWorker);
  }

  /** Ask every worker to exit; resolves when they have (those that do not within 5 s are killed). */
  async close(): Promise<void> {
    for (const s of [...this.all]) this.retire(s);
    await Promise.all([...this.all].map((s) => s.closed));
  }

  private spawnWorker(): WorkerSlot {
    const heap = this.cfg.options.memory_mb ? [`--max-old-space-size=${this.cfg.options.memory_mb}`] : [];
    // node flags first: the CLI's own arguments start with its node flags and entry script
    const child = spawn(this.cfg.cli.command, [...heap, ...(this.cfg.options.node_args ?? []), ...this.cfg.cli.args, '_trial-worker'], {
      cwd: this.cfg.cwd,
      env: this.cfg.env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let markReady: (ok: boolean) => void = () => {};
    const slot: WorkerSlot = {
      child,
      ready: new Promise<boolean>((r) => (markReady = r)),
      trials: 0,
      outputTail: '',
      retiring: false,
      closed: new Promise<void>((r) => child.on('close', () => r())),
    };
    this.all.add(slot);
    // Trials write their own log files; what still reaches the worker's stdout/stderr is
    // output from native code or from the process dying (V8's out-of-memory report, a
    // native abort): it belongs to the trial running then.
    const route = (d: Buffer) => {
      slot.outputTail = (slot.outputTail + d.toString()).slice(-8192);
      if (slot.job) appendFileSync(slot.job.job.logFile, d);
      else this.cfg.stray(d.toString());
    };
    child.stdout?.on('data', route);
    child.stderr?.on('data', route);
    child.on('message', (m: FromWorker) => {
      if (m.type === 'ready') markReady(true);
      else if (m.type === 'done' && slot.job) {
        const { resolve } = slot.job;
        slot.job = undefined;
        resolve({ exitCode: m.exitCode, signal: null, crashed: false, ...(m.error !== undefined ? { error: m.error } : {}), leakedTensors: m.leakedTensors });
      }
    });
    // 'close' comes after the worker's stdout/stderr are drained, so a crash report is in the log first
    child.on('close', (code, signal) => {
      this.all.delete(slot);
      const i = this.idle.indexOf(slot);
      if (i >= 0) this.idle.splice(i, 1);
      const w = this.warming.indexOf(slot);
      if (w >= 0 && slot.retiring) this.warming.splice(w, 1);
      markReady(false);
      if (slot.job) {
        const { job, resolve } = slot.job;
        slot.job = undefined;
        appendFileSync(job.logFile, `\n=== the trial worker (pid ${child.pid}) died during this trial: ${signal ?? `exit code ${code}`}\n`);
        resolve({ exitCode: code, signal, crashed: true, outOfMemory: /JavaScript heap out of memory|Reached heap limit/.test(slot.outputTail) });
      }
    });
    child.on('error', (e) => this.cfg.stray(`trial worker: ${e.message}\n`));
    return slot;
  }

  private retire(s: WorkerSlot): void {
    if (s.retiring) return;
    s.retiring = true;
    const i = this.idle.indexOf(s);
    if (i >= 0) this.idle.splice(i, 1);
    const w = this.warming.indexOf(s);
    if (w >= 0) this.warming.splice(w, 1);
    if (s.child.connected) s.child.send({ type: 'exit' } satisfies ToWorker);
    const t = setTimeout(() => s.child.kill('SIGKILL'), 5000);
    t.unref();
    void s.closed.then(() => clearTimeout(t));
  }
}
