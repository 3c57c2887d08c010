import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../../framework/api.js';

/**
 * CLIP's byte-level BPE tokenizer, reading `vocab.json` + `merges.txt` from a local folder.
 * Hand-written because the maintained JS option (@huggingface/transformers) pulls in
 * onnxruntime-node, whose install fetches native binaries; the fixture checks this against
 * transformers' CLIPTokenizer ids.
 *
 * Steps as CLIP: NFC, collapse whitespace, lower-case; split with CLIP's pattern; map bytes
 * to the printable byte alphabet; BPE with `</w>` marking word ends; add BOS/EOS.
 */
const SPLIT = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/gu;

function byteAlphabet(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const map: string[] = new Array(256);
  for (const b of bs) map[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) map[b] = String.fromCodePoint(256 + n++);
  return map;
}

export class ClipTokenizer {
  private readonly bytes = byteAlphabet();
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;

  constructor(readonly vocab: Map<string, number>, private readonly merges: [string, string][], readonly maxLength = 77, private readonly padToken = '<|endoftext|>') {
    merges.forEach(([a, b], i) => this.ranks.set(`${a} ${b}`, i));
    const id = (t: string) => {
      const v = vocab.get(t);
      if (v === undefined) throw new UserError(`tokenizer vocab has no "${t}" token`);
      return v;
    };
    this.bosId = id('<|startoftext|>');
    this.eosId = id('<|endoftext|>');
    this.padId = id(padToken);
  }

  static fromFolder(dir: string): ClipTokenizer {
    const read = (f: string) => {
      try {
        return readFileSync(join(dir, f), 'utf8');
      } catch {
        throw new UserError(`tokenizer folder ${dir} has no readable ${f}`);
      }
    };
    const vocab = new Map(Object.entries(JSON.parse(read('vocab.json')) as Record<string, number>));
    const merges = read('merges.txt')
      .split('\n')
      .filter((l, i) => l.trim() && !(i === 0 && l.startsWith('#version')))
      .map((l) => l.split(' ') as [string, string]);
    let maxLength = 77;
    let pad = '<|endoftext|>';
    try {
      const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as { model_max_length?: number; pad_token?: string | { content: string } };
      if (typeof cfg.model_max_length === 'number' && cfg.model_max_length < 1e6) maxLength = cfg.model_max_length;
      if (cfg.pad_token) pad = typeof cfg.pad_token === 'string' ? cfg.pad_token : cfg.pad_token.content;
    } catch {
      /* tokenizer_config.json is optional */
    }
    return new ClipTokenizer(vocab, merges, maxLength, pad);
  }

  /** The folder files `fromFolder` reads (and transformers' CLIPTokenizer loads), by file name. */
  files(): Record<string, string> {
    const config = {
      tokenizer_class: 'CLIPTokenizer',
      model_max_length: this.maxLength,
      do_lower_case: true,
      bos_token: '<|startoftext|>',
      eos_token: '<|endoftext|>',
      unk_token: '<|endoftext|>',
      pad_token: this.padToken,
    };
    return {
      'vocab.json': JSON.stringify(Object.fromEntries(this.vocab)) + '\n',
      'merges.txt': ['#version: 0.2', ...this.merges.map(([a, b]) => `${a} ${b}`)].join('\n') + '\n',
      'tokenizer_config.json': JSON.stringify(config, null, 2) + '\n',
    };
  }

  private bpe(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const chars = [...word];
    let parts = chars.map((c, i) => (i === chars.length - 1 ? `${c}</w>` : c));
    while (parts.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const r = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const merged = (parts[best] as string) + (parts[best + 1] as string);
      const next: string[] = [];
      // merge every occurrence of the best pair, left to right
      for (let i = 0; i < parts.length; i++) {
        if (i < parts.length - 1 && parts[i] === parts[best] && parts[i + 1] === parts[best + 1]) {
          next.push(merged);
          i++;
        } else next.push(parts[i] as string);
      }
      parts = next;
    }
    const ids = parts.map((p) => this.vocab.get(p) ?? this.eosId);
    this.cache.set(word, ids);
    return ids;
  }

  /** Token ids with BOS/EOS; `maxLength` truncates (keeping EOS) and, with `pad`, pads. */
  encode(text: string, opts: { pad?: boolean; maxLength?: number } = {}): number[] {
    const clean = text.normalize('NFC').replace(/\s+/gu, ' ').trim().toLowerCase();
    const ids = [this.bosId];
    for (const m of clean.matchAll(SPLIT)) {
      const piece = m[0];
      if (piece === '<|startoftext|>' || piece === '<|endoftext|>') {
        ids.push(this.vocab.get(piece) as number);
        continue;
      }
      const mapped = [...Buffer.from(piece, 'utf8')].map((b) => this.bytes[b] as string).join('');
      ids.push(...this.bpe(mapped));
    }
    ids.push(this.eosId);
    const max = opts.maxLength ?? (opts.pad ? this.maxLength : Infinity);
    if (ids.length > max) {
      ids.length = max;
      ids[max - 1] = this.eosId;
    }
    if (opts.pad) while (ids.length < max) ids.push(this.padId);
    return ids;
  }

  /**
   * Token positions of each phrase in `phrases.join(', ')` (BOS at 0). The split pattern cuts
   * at word and punctuation boundaries, so a prefix of the prompt tokenizes to a prefix of its
   * ids: a phrase's positions are those its prefix adds. Positions at or past the truncation
   * point (maxLength - 1 keeps EOS) are dropped.
   */
  phraseSpans(phrases: readonly string[], maxLength = this.maxLength): { prompt: string; spans: number[][] } {
    const spans: number[][] = [];
    let prefix = '';
    let before = 1; // BOS
    phrases.forEach((p, i) => {
      prefix += (i > 0 ? ', ' : '') + p;
      const through = this.encode(prefix).length - 1; // minus EOS
      const start = i > 0 ? before + this.encode(',').length - 2 : before; // skip the comma's token(s)
      const span: number[] = [];
      for (let k = start; k < through && k < maxLength - 1; k++) span.push(k);
      spans.push(span);
      before = through;
    });
    return { prompt: phrases.join(', '), spans };
  }
}

/** A byte-level CLIP tokenizer without merges (ids 0..511 bytes/`</w>` bytes, 512 BOS, 513 EOS): the `tiny` preset's. */
export function byteLevelClipTokenizer(maxLength = 77): ClipTokenizer {
  const chars = byteAlphabet();
  const vocab = new Map<string, number>();
  chars.forEach((c, i) => vocab.set(c, i));
  chars.forEach((c, i) => vocab.set(`${c}</w>`, 256 + i));
  vocab.set('<|startoftext|>', 512);
  vocab.set('<|endoftext|>', 513);
  return new ClipTokenizer(vocab, [], maxLength);
}
