/**
 * The live MLflow tracker: the runner journals events and calls onAppend(); this ships them
 * in the background (a short batching window, one shipment at a time), keeps retrying with
 * backoff while the server is away, and on close makes a last bounded attempt. Whatever is
 * not acknowledged by then stays in the journal for `rass runs sync`.
 */
import type { RunTracker } from '../tracker.js';
import { MlflowHttpError } from './client.js';
import { RunShipper, type ShipperOptions } from './shipper.js';
import { tryLock } from './state.js';

export interface MlflowTrackerOptions extends ShipperOptions {
  /** wait this long after an append before shipping, so steps batch together */
  batchWindowMs?: number;
  /** backoff between shipments that failed after the client's own retries */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** default timeout of close() */
  closeTimeoutMs?: number;
  log?: (message: string) => void;
}

const SHIP_LOCK = '.mlflow-ship.lock';

export class MlflowTracker implements RunTracker {
  readonly name = 'mlflow';
  readonly shipper: RunShipper;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private failures = 0;
  private nextTryAt = 0;
  private fatal: Error | undefined;
  /** the last retryable failure's message (already redacted), for the end-of-run line */
  private lastFailure: string | undefined;
  private closed = false;
  private readonly releaseLock: () => void;
  private readonly log: (m: string) => void;
  private readonly windowMs: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;

  constructor(private readonly opts: MlflowTrackerOptions) {
    this.log = opts.log ?? ((m) => process.stderr.write(`[mlflow] ${m}\n`));
    this.shipper = new RunShipper({ ...opts, warn: opts.warn ?? this.log });
    this.windowMs = opts.batchWindowMs ?? 1000;
    this.retryBaseMs = opts.retryBaseMs ?? 1000;
    this.retryMaxMs = opts.retryMaxMs ?? 30_000;
    const lock = tryLock(opts.dir, SHIP_LOCK);
    if ('heldBy' in lock) throw new Error(`${opts.dir} is already being shipped to MLflow by process ${lock.heldBy}`);
    this.releaseLock = lock.release;
  }

  /** The last non-retryable error, when shipping stopped for good (sync can take over later). */
  get error(): Error | undefined {
    return this.fatal;
  }

  onAppend(): void {
    if (this.closed || this.fatal || this.timer || this.inFlight) return;
    this.schedule(Math.max(this.windowMs, this.nextTryAt - Date.now()));
  }

  private schedule(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.shipOnce();
    }, ms);
    // Background shipping must not keep a finished process alive; close() does the last round.
    this.timer.unref();
  }

  /** One shipment (never two at once); failures only set up the next attempt. */
  private shipOnce(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    this.inFlight = (async () => {
      try {
        await this.shipper.ship();
        this.failures = 0;
        this.nextTryAt = 0;
      } catch (e) {
        if (e instanceof MlflowHttpError && e.retryable) {
          this.failures++;
          const delay = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** (this.failures - 1));
          this.nextTryAt = Date.now() + delay;
          this.lastFailure = e.message;
          if (this.failures === 1 || this.failures % 10 === 0) this.log(`${e.message}; events stay in the journal, next try in ${delay} ms`);
        } else {
          this.fatal = e as Error;
          this.log(`shipping stopped: ${(e as Error).message}. The run goes on locally; \`rass runs sync\` uploads it later.`);
        }
      } finally {
        this.inFlight = undefined;
      }
      if (!this.closed && !this.fatal && !this.shipper.caughtUp) this.schedule(Math.max(0, this.nextTryAt - Date.now()));
    })();
    return this.inFlight;
  }

  /** When the next background attempt is due (epoch ms; 0: no backoff pending). */
  get nextAttemptAt(): number {
    return this.nextTryAt;
  }

  async flush(opts?: { timeoutMs?: number }): Promise<void> {
    await this.flushUntil(Date.now() + (opts?.timeoutMs ?? 30_000), false);
  }

  /**
   * Ship until caught up or `deadline`. `final` (close): a backoff wait that would run past
   * the deadline is skipped and the attempt made at once, so a server that came back during
   * a long backoff still gets the end of the run; the backoff only paces a running process.
   */
  private async flushUntil(deadline: number, final: boolean): Promise<void> {
    let forced = false;
    while (!this.fatal) {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      const wait = this.nextTryAt - Date.now();
      if (wait > 0) {
        if (Date.now() + wait <= deadline) await new Promise((r) => setTimeout(r, wait));
        // one attempt past the backoff is all close() owes the user; then it gives up
        else if (!final || forced) return;
        else forced = true;
      }
      // A hanging server must not hold the caller past its deadline: the shipment goes on in
      // the background (or is dropped with the thread at close) and resumes from the state.
      const left = deadline - Date.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        this.shipOnce().then(() => false),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(true), left);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) return;
      // shipOnce pulled everything journaled; done when it is all acknowledged.
      if (this.failures === 0 && this.shipper.caughtUp) return;
      if (Date.now() >= deadline) return;
    }
  }

  async close(opts?: { timeoutMs?: number }): Promise<void> {
    if (this.closed) return;
    try {
      const ackedBefore = this.shipper.ackedSeq;
      await this.flushUntil(Date.now() + (opts?.timeoutMs ?? this.opts.closeTimeoutMs ?? 30_000), true);
      if (!this.fatal) this.reportEnd(this.shipper.ackedSeq > ackedBefore);
    } finally {
      this.closed = true;
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      if (this.inFlight) {
        // Past the deadline: abandon the shipment in flight (nothing unacknowledged is lost;
        // `rass runs sync` or the next tracker resumes from the state file).
        this.shipper.client.abortPending();
        await this.inFlight.catch(() => undefined);
      }
      this.releaseLock();
    }
  }

  /**
   * The end-of-run line when something is left: the user's next step differs between a
   * server that is down right now (nothing to do until it is back) and an upload the close
   * deadline cut short while the server was answering (sync now finishes it).
   */
  private reportEnd(answeredWhileClosing: boolean): void {
    let pending: number;
    try {
      pending = this.shipper.pending;
    } catch (e) {
      this.log(`could not read the journal at the end of the run: ${(e as Error).message}`);
      return;
    }
    if (pending === 0) return;
    const events = `${pending} journal event${pending === 1 ? '' : 's'}`;
    if (!answeredWhileClosing) {
      const why = this.failures > 0 ? (this.lastFailure ?? 'no answer') : 'no answer within the close deadline';
      this.log(`server unreachable now (${why}): ${events} not uploaded; the run is complete locally, upload it with \`rass runs sync\` once the server is back`);
    } else {
      this.log(`upload incomplete: ${events} still pending when the close deadline passed (the server was accepting them); run \`rass runs sync\` to upload them`);
    }
  }
}
