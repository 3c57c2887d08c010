import * as tf from '@tensorflow/tfjs-core';
import type { PromptEncoder } from '../../../framework/api.js';
import { Embedding, LayerNorm, Linear, ParamStore, Scope, activation } from './nn.js';
import type { ClipTokenizer } from './tokenizer.js';
import { saveComponent, saveTokenizer } from './save-pretrained.js';
import { NO_RECORD, Recorder, type ForwardOptions } from './taps.js';
import { Rng } from '../../../framework/api.js';

/** The subset of transformers' `CLIPTextConfig` (text_encoder/config.json) used here. */
export interface ClipTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: string;
  layer_norm_eps: number;
  eos_token_id?: number;
  [k: string]: unknown;
}

class ClipLayer {
  readonly ln1: LayerNorm;
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly ln2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(scope: Scope, private readonly c: ClipTextConfig, readonly name: string) {
    const d = c.hidden_size;
    this.ln1 = new LayerNorm(scope.child('layer_norm1'), d, c.layer_norm_eps);
    const a = scope.child('self_attn');
    this.q = new Linear(a.child('q_proj'), d, d);
    this.k = new Linear(a.child('k_proj'), d, d);
    this.v = new Linear(a.child('v_proj'), d, d);
    this.o = new Linear(a.child('out_proj'), d, d);
    this.ln2 = new LayerNorm(scope.child('layer_norm2'), d, c.layer_norm_eps);
    this.fc1 = new Linear(scope.child('mlp').child('fc1'), d, c.intermediate_size);
    this.fc2 = new Linear(scope.child('mlp').child('fc2'), c.intermediate_size, d);
  }
  forward(x: tf.Tensor3D, mask: tf.Tensor, rec: Recorder): tf.Tensor3D {
    const [b, n, d] = x.shape;
    const heads = this.c.num_attention_heads;
    const hd = d / heads;
    const h = this.ln1.forward(x);
    const split = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [b, n, heads, hd]), [0, 2, 1, 3]);
    const q = split(this.q.forward(h));
    const k = split(this.k.forward(h));
    const v = split(this.v.forward(h));
    const probs = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), mask), -1);
    rec.attn(`${this.name}.self_attn`, probs);
    const att = this.o.forward(tf.reshape(tf.transpose(tf.matMul(probs, v), [0, 2, 1, 3]), [b, n, d]));
    const r = tf.add(x, att);
    const act = activation(this.c.hidden_act);
    return tf.add(r, this.fc2.forward(act(this.fc1.forward(this.ln2.forward(r))))) as tf.Tensor3D;
  }
}

/** transformers' `CLIPTextModel` (causal self-attention, pre-LN). Tap names: `text_model.encoder.layers.i`. */
export class ClipTextModel implements PromptEncoder {
  readonly type = 'clip-text';
  readonly store: ParamStore;
  /** Set by the plugin (folder tokenizer or the tiny byte-level one). */
  tokenizer: ClipTokenizer | null = null;
  private readonly tokenEmb: Embedding;
  private readonly posEmb: Embedding;
  private readonly layers: ClipLayer[];
  private readonly finalLn: LayerNorm;

  constructor(readonly config: ClipTextConfig, seed = 0, shapesOnly = false) {
    this.store = new ParamStore(Rng.derive(seed, 'clip-text'), shapesOnly);
    const t = new Scope(this.store, 'text_model');
    const e = t.child('embeddings');
    this.tokenEmb = new Embedding(e.child('token_embedding'), config.vocab_size, config.hidden_size);
    this.posEmb = new Embedding(e.child('position_embedding'), config.max_position_embeddings, config.hidden_size);
    this.layers = Array.from({ length: config.num_hidden_layers }, (_, i) => new ClipLayer(t.child('encoder').child('layers').child(i), config, `text_model.encoder.layers.${i}`));
    this.finalLn = new LayerNorm(t.child('final_layer_norm'), config.hidden_size, config.layer_norm_eps);
  }

  /** ids: [B, N] int32 -> last_hidden_state [B, N, hidden] (after the final layer norm). */
  forward(ids: tf.Tensor2D, opts: ForwardOptions = {}): { lastHiddenState: tf.Tensor3D; features: Map<string, tf.Tensor>; attention: Map<string, tf.Tensor> } {
    const rec = opts.taps?.length || opts.captureAttention ? new Recorder(opts) : NO_RECORD;
    const out = tf.tidy(() => this.run(ids, rec));
    return { lastHiddenState: out, features: rec === NO_RECORD ? new Map() : rec.features, attention: rec === NO_RECORD ? new Map() : rec.attention };
  }

  run(ids: tf.Tensor2D, rec: Recorder = NO_RECORD): tf.Tensor3D {
    const [, n] = ids.shape;
    if (n > this.config.max_position_embeddings) throw new Error(`text of ${n} tokens exceeds max_position_embeddings ${this.config.max_position_embeddings}`);
    let h = tf.add(this.tokenEmb.forward(ids), this.posEmb.forward(tf.range(0, n, 1, 'int32'))) as tf.Tensor3D;
    const causal = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) causal[i * n + j] = -1e9;
    const mask = tf.tensor(causal, [1, 1, n, n]);
    this.layers.forEach((l, i) => {
      h = l.forward(h, mask, rec);
      rec.tap(`text_model.encoder.layers.${i}`, h);
    });
    return this.finalLn.forward(h) as tf.Tensor3D;
  }

  /** Tokenize (padded to max length) and encode prompts: [B, maxLength, hidden]. */
  encodeText(texts: readonly string[]): tf.Tensor3D {
    const tok = this.tokenizer;
    if (!tok) throw new Error('clip-text model has no tokenizer');
    const n = Math.min(tok.maxLength, this.config.max_position_embeddings);
    const ids = tf.tensor2d(texts.map((t) => tok.encode(t, { pad: true, maxLength: n })), [texts.length, n], 'int32');
    const out = this.forward(ids).lastHiddenState;
    ids.dispose();
    return out;
  }

  promptTokens(phrases: readonly string[]): { prompt: string; spans: number[][] } {
    const tok = this.tokenizer;
    if (!tok) throw new Error('clip-text model has no tokenizer');
    return tok.phraseSpans(phrases, Math.min(tok.maxLength, this.config.max_position_embeddings));
  }

  /** text_encoder/ (transformers' CLIPTextModel layout, token ids from the tokenizer) and tokenizer/. */
  savePretrained(root: string, opts: { config?: Readonly<Record<string, unknown>> } = {}): Record<string, [string, string]> {
    const tok = this.tokenizer;
    if (!tok) throw new Error('clip-text model has no tokenizer to save');
    const config = { architectures: ['CLIPTextModel'], model_type: 'clip_text_model', ...this.config, bos_token_id: tok.bosId, eos_token_id: tok.eosId, pad_token_id: tok.padId, ...opts.config };
    saveComponent(root, 'text_encoder', 'model.safetensors', this.store, config);
    saveTokenizer(root, tok);
    return { text_encoder: ['transformers', 'CLIPTextModel'], tokenizer: ['transformers', 'CLIPTokenizer'] };
  }

  dispose(): void {
    this.store.dispose();
  }
}
