import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf, writeSafetensors } from '../../../framework/api.js';
import type { ParamStore } from './nn.js';
import type { ClipTokenizer } from './tokenizer.js';
import { exportWeights } from './weights.js';

/**
 * Writing a component the way diffusers' / transformers' `save_pretrained` lays it out
 * (`<root>/<sub>/config.json` + one fp32 safetensors file under the reference names and torch
 * layouts), so `loadUNet`/`loadVae`/`loadClipText` and the reference libraries read it back.
 * The loaders upcast fp16 files, but fp32 is what is written: the engine's safetensors
 * writer has no F16 encoder, and the tiny models stay small without it.
 */
const DIFFUSERS_VERSION = '0.31.0';

export function saveComponent(root: string, sub: string, weightFile: string, store: ParamStore, config: Record<string, unknown>): void {
  const dir = join(root, sub);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  // a scope: exportWeights leaves its transposed (torch-layout) copies allocated
  tf.engine().startScope();
  let weights: ReturnType<typeof exportWeights>;
  try {
    weights = exportWeights(store);
  } finally {
    tf.engine().endScope();
  }
  writeSafetensors(join(dir, weightFile), weights, { format: 'pt' });
}

/** diffusers' config.json carries the class it builds and the library version. */
export function diffusersConfig(className: string, config: object, overrides?: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return { _class_name: className, _diffusers_version: DIFFUSERS_VERSION, ...config, ...overrides };
}

/** `<root>/tokenizer/`: vocab.json, merges.txt (with the `#version` line CLIPTokenizer skips) and tokenizer_config.json. */
export function saveTokenizer(root: string, tok: ClipTokenizer): void {
  const dir = join(root, 'tokenizer');
  mkdirSync(dir, { recursive: true });
  const f = tok.files();
  for (const [name, text] of Object.entries(f)) writeFileSync(join(dir, name), text);
}
