/**
 * What can end a run from outside the experiment's own promise, watched while it runs:
 * SIGINT/SIGTERM (or an external abort standing for one), and an error thrown outside the
 * experiment's promise (a stray timer or event handler). Either aborts the experiment's
 * signal; a signal gives the experiment a grace period to checkpoint before the run is closed
 * as KILLED, a stray error fails the run like an error the experiment threw.
 */
import type { Logger } from '../plugins/context.js';
import type { LocalRun } from '../tracking/local-run.js';

export interface InterruptionOptions {
  /** install SIGINT/SIGTERM handlers */
  handleSignals?: boolean;
  /** treat uncaught exceptions / unhandled rejections as the experiment's error */
  handleUncaught: boolean;
  /** an external abort: behaves like SIGTERM, or SIGINT when that is the abort reason */
  signal?: AbortSignal;
  killGraceMs?: number;
}

export class Interruptions {
  /** the signal that stopped the run, once one did */
  killedBy: string | undefined;
  /** the first stray error, once one happened */
  strayError: unknown;
  /** resolves when a stopped experiment's grace period ends (or a second signal arrives) */
  readonly killed: Promise<void>;
  /** rejects with the first stray error (never an unhandled rejection itself) */
  readonly stray: Promise<never>;

  /** stray errors are caught (and fail the run) rather than left to Node */
  get handlesUncaught(): boolean {
    return this.o.handleUncaught;
  }

  private graceTimer: NodeJS.Timeout | undefined;
  private resolveKilled: () => void = () => {};
  private rejectStray: (e: unknown) => void = () => {};
  private readonly sigint = () => this.onSignal('SIGINT');
  private readonly sigterm = () => this.onSignal('SIGTERM');
  // the abort reason may name the signal it stands for (a sweep's trial worker passes SIGINT on)
  private readonly onExternalAbort = () => this.onSignal(this.o.signal?.reason === 'SIGINT' ? 'SIGINT' : 'SIGTERM');
  private readonly onStray = (e: unknown) => {
    if (this.strayError !== undefined) return;
    this.strayError = e ?? new Error('unhandled rejection with no reason');
    this.controller.abort(this.strayError);
    this.rejectStray(this.strayError);
  };

  constructor(
    private readonly o: InterruptionOptions,
    private readonly run: LocalRun,
    private readonly controller: AbortController,
    private readonly log: Logger,
  ) {
    this.killed = new Promise<void>((r) => (this.resolveKilled = r));
    this.stray = new Promise<never>((_, rej) => (this.rejectStray = rej));
    this.stray.catch(() => {}); // consumed by the runner's race; never itself unhandled
    if (o.handleSignals) {
      process.on('SIGINT', this.sigint);
      process.on('SIGTERM', this.sigterm);
    }
    o.signal?.addEventListener('abort', this.onExternalAbort, { once: true });
    // aborted while the run was being set up: no 'abort' event comes again
    if (o.signal?.aborted) queueMicrotask(this.onExternalAbort);
    // without a handler Node would kill the process with the run left RUNNING
    if (o.handleUncaught) {
      process.on('uncaughtException', this.onStray);
      process.on('unhandledRejection', this.onStray);
    }
  }

  private onSignal(sig: string): void {
    if (this.killedBy !== undefined) {
      this.resolveKilled(); // a second signal: stop waiting
      return;
    }
    this.killedBy = sig;
    this.log.warn(`${sig}: stopping run ${this.run.runId} (journal flushed, status KILLED)`);
    this.run.journal.sync();
    this.controller.abort(new Error(`run killed by ${sig}`));
    this.graceTimer = setTimeout(this.resolveKilled, this.o.killGraceMs ?? 10_000);
    this.graceTimer.unref();
  }

  /** Remove every handler (the run is over). */
  dispose(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    if (this.o.handleSignals) {
      process.off('SIGINT', this.sigint);
      process.off('SIGTERM', this.sigterm);
    }
    if (this.o.handleUncaught) {
      process.off('uncaughtException', this.onStray);
      process.off('unhandledRejection', this.onStray);
    }
    this.o.signal?.removeEventListener('abort', this.onExternalAbort);
  }
}
