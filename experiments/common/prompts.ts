import { tf, type PromptEncoder } from '../../framework/api.js';

/**
 * Text embeddings by prompt. The text encoder is frozen in SCR and RASS, so a prompt's
 * embedding never changes: it is computed once and reused (a dataset has few distinct tag
 * sets). Entries are kept as host arrays, not tensors, so the tensor count stays flat while the
 * cache fills; the cache is bounded in bytes (an open-vocabulary tagger can make many prompts).
 */
export class PromptCache {
  private readonly cache = new Map<string, Float32Array>();
  private shape: [number, number] | null = null;
  private bytes = 0;
  constructor(private readonly encoder: PromptEncoder, private readonly maxBytes = 256 * 2 ** 20) {}

  private get(prompt: string): Float32Array {
    let e = this.cache.get(prompt);
    if (!e) {
      const t = this.encoder.encodeText([prompt]);
      this.shape = [t.shape[1], t.shape[2]];
      e = t.dataSync() as Float32Array;
      t.dispose();
      if (this.bytes + e.byteLength > this.maxBytes) this.clear();
      this.cache.set(prompt, e);
      this.bytes += e.byteLength;
    }
    return e;
  }

  /** [B, tokens, dim] for a batch of prompts (a new tensor the caller disposes). */
  batch(prompts: readonly string[]): tf.Tensor3D {
    const parts = prompts.map((p) => this.get(p));
    const [t, d] = this.shape as [number, number];
    const data = new Float32Array(parts.length * t * d);
    parts.forEach((p, i) => data.set(p, i * t * d));
    return tf.tensor3d(data, [parts.length, t, d]);
  }

  private clear(): void {
    this.cache.clear();
    this.bytes = 0;
  }

  dispose(): void {
    this.clear();
  }
}
