import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClipTextModel, type ClipTextConfig } from './clip.js';
import { ClipTokenizer } from './tokenizer.js';
import { UNet2DConditionModel, type UNetConfig } from './unet.js';
import { AutoencoderKL, type VaeConfig } from './vae.js';
import { findWeightFile, loadWeights, readWeightFiles } from './weights.js';
import { UserError } from '../../../framework/api.js';

/** Where each component lives in a diffusers pipeline folder, and the files it needs. */
export const COMPONENT_FILES = {
  unet: ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.safetensors.index.json', 'diffusion_pytorch_model.fp16.safetensors'],
  vae: ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.safetensors.index.json', 'diffusion_pytorch_model.fp16.safetensors'],
  text_encoder: ['model.safetensors', 'model.safetensors.index.json', 'model.fp16.safetensors'],
} as const;

export type Component = keyof typeof COMPONENT_FILES | 'tokenizer';

/**
 * Check that a diffusers folder has what the listed components need; throws one
 * UserError listing every missing file and where it looked.
 */
export function checkDiffusersFolder(root: string, components: readonly Component[]): void {
  const missing: string[] = [];
  if (!existsSync(root)) throw new UserError(`diffusers model folder ${root} does not exist (looked for ${components.map((c) => `${c}/`).join(', ')} inside it)`);
  for (const c of components) {
    const dir = join(root, c);
    if (c === 'tokenizer') {
      for (const f of ['vocab.json', 'merges.txt']) if (!existsSync(join(dir, f))) missing.push(join(dir, f));
      continue;
    }
    if (!existsSync(join(dir, 'config.json'))) missing.push(join(dir, 'config.json'));
    if (!findWeightFile(dir, COMPONENT_FILES[c])) missing.push(`${dir}/{${COMPONENT_FILES[c].join(',')}} (one of)`);
  }
  if (missing.length) {
    throw new UserError(
      `diffusers model folder ${root} is incomplete; missing:\n  ${missing.join('\n  ')}\n` +
        'Download the model (e.g. `huggingface-cli download stabilityai/stable-diffusion-2-1-base --include "unet/*" "vae/*" "text_encoder/*" "tokenizer/*" --local-dir DIR`) and point `path` at DIR.',
    );
  }
}

function readConfig<T>(dir: string): T {
  const p = join(dir, 'config.json');
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as T;
  } catch (e) {
    throw new UserError(`${p}: cannot read config (${(e as Error).message})`);
  }
}

function weightFile(root: string, c: keyof typeof COMPONENT_FILES): string {
  const f = findWeightFile(join(root, c), COMPONENT_FILES[c]);
  if (!f) checkDiffusersFolder(root, [c]);
  return f as string;
}

export function loadUNet(root: string): UNet2DConditionModel {
  checkDiffusersFolder(root, ['unet']);
  const m = new UNet2DConditionModel(readConfig<UNetConfig>(join(root, 'unet')), 0, false, join(root, 'unet', 'config.json'));
  const f = weightFile(root, 'unet');
  tryLoad(m, () => loadWeights(m.store, readWeightFiles(f), f));
  return m;
}

export function loadVae(root: string): AutoencoderKL {
  checkDiffusersFolder(root, ['vae']);
  const m = new AutoencoderKL(readConfig<VaeConfig>(join(root, 'vae')), 0, false, join(root, 'vae', 'config.json'));
  const f = weightFile(root, 'vae');
  tryLoad(m, () => loadWeights(m.store, readWeightFiles(f), f));
  return m;
}

export function loadClipText(root: string): ClipTextModel {
  checkDiffusersFolder(root, ['text_encoder']);
  const m = new ClipTextModel(readConfig<ClipTextConfig>(join(root, 'text_encoder')));
  const f = weightFile(root, 'text_encoder');
  tryLoad(m, () => {
    // transformers >= 5 saves CLIPTextModel without the `text_model.` prefix older files carry
    const raw = readWeightFiles(f);
    const prefixed = [...raw.keys()].some((k) => k.startsWith('text_model.'));
    loadWeights(m.store, prefixed ? raw : new Map([...raw].map(([k, v]) => [`text_model.${k}`, v])), f);
  });
  return m;
}

export function loadTokenizer(root: string): ClipTokenizer {
  checkDiffusersFolder(root, ['tokenizer']);
  return ClipTokenizer.fromFolder(join(root, 'tokenizer'));
}

function tryLoad(m: { dispose(): void }, load: () => void): void {
  try {
    load();
  } catch (e) {
    m.dispose();
    throw e;
  }
}
