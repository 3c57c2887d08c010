import * as tf from '@tensorflow/tfjs-core';
import type { TapOptions } from '../../../framework/api.js';

/** What a caller asks a forward pass to record besides its output. */
export type ForwardOptions = TapOptions;

/**
 * Collects tapped features during one forward pass. Recorded tensors are cloned and
 * `tf.keep`-ed, so they survive the surrounding `tf.tidy`; the caller owns (and disposes)
 * them. Nothing is recorded unless asked for, so a forward without taps allocates nothing extra.
 */
export class Recorder {
  readonly features = new Map<string, tf.Tensor>();
  readonly attention = new Map<string, tf.Tensor>();
  private readonly wanted: Set<string>;
  private readonly attnPatterns: RegExp[];
  private readonly attnMode: 'mean' | 'per-head';
  constructor(opts: ForwardOptions = {}) {
    this.wanted = new Set(opts.taps ?? []);
    this.attnPatterns = (opts.captureAttention?.layers ?? []).map((p) => (p instanceof RegExp ? new RegExp(`^(?:${p.source})$`) : new RegExp(`^(?:${p})$`)));
    this.attnMode = opts.captureAttention?.mode ?? 'mean';
  }
  wants(name: string): boolean {
    return this.wanted.has(name);
  }
  tap(name: string, t: tf.Tensor): void {
    if (this.wanted.has(name)) this.features.set(name, tf.keep(tf.clone(t)));
  }
  wantsAttention(name: string): boolean {
    return this.attnPatterns.some((r) => r.test(name));
  }
  /** probs: [B, heads, Nq, Nk]. */
  attn(name: string, probs: tf.Tensor): void {
    if (!this.wantsAttention(name)) return;
    this.attention.set(name, tf.keep(this.attnMode === 'mean' ? tf.mean(probs, 1) : tf.clone(probs)));
  }
  /** Names requested but never produced: an error, so a typo in a tap name does not pass silently. */
  missing(): string[] {
    return [...this.wanted].filter((n) => !this.features.has(n));
  }
  dispose(): void {
    for (const t of this.features.values()) t.dispose();
    for (const t of this.attention.values()) t.dispose();
  }
}

/** A shared no-op recorder for plain forwards. */
export const NO_RECORD = new Recorder();
