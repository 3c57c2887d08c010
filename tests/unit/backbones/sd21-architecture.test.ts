import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend } from '../../../framework/engine/backend.js';
import { ClipTextModel, type ClipTextConfig } from '../../../registry/backbones/sd/clip.js';
import { UNet2DConditionModel, type UNetConfig } from '../../../registry/backbones/sd/unet.js';
import { AutoencoderKL, type VaeConfig } from '../../../registry/backbones/sd/vae.js';

/** Full-size SD 2.1-base state_dicts (key -> torch shape) dumped by diffusers/transformers on the meta device. */
const REF = JSON.parse(readFileSync(join(process.cwd(), 'tests/fixtures/backbones/sd21-base-shapes.json'), 'utf8')) as Record<
  'unet' | 'vae' | 'text_encoder',
  { config: Record<string, unknown>; params: Record<string, number[]>; count: number }
>;

function compare(store: { params: Map<string, { torchShape: number[] }>; count(): number }, ref: (typeof REF)['unet'], what: string): void {
  const ours = new Map([...store.params].map(([k, p]) => [k, p.torchShape]));
  const missing = Object.keys(ref.params).filter((k) => !ours.has(k));
  const extra = [...ours.keys()].filter((k) => !(k in ref.params));
  assert.deepEqual(missing, [], `${what}: diffusers keys we do not build`);
  assert.deepEqual(extra, [], `${what}: keys diffusers does not have`);
  for (const [k, shape] of Object.entries(ref.params)) assert.deepEqual(ours.get(k), shape, `${what}: ${k}`);
  assert.equal(store.count(), ref.count, `${what}: parameter count`);
}

describe('full-size SD 2.1-base architectures match diffusers/transformers key names and shapes', () => {
  before(async () => {
    await useBackend('cpu');
  });
  it('UNet2DConditionModel (865M parameters)', () => {
    const m = new UNet2DConditionModel(REF.unet.config as unknown as UNetConfig, 0, true);
    compare(m.store, REF.unet, 'unet');
    m.dispose();
  });
  it('AutoencoderKL', () => {
    const m = new AutoencoderKL(REF.vae.config as unknown as VaeConfig, 0, true);
    compare(m.store, REF.vae, 'vae');
    m.dispose();
  });
  it('CLIP text encoder (OpenCLIP ViT-H, 23 layers)', () => {
    const cfg = { layer_norm_eps: 1e-5, ...REF.text_encoder.config } as unknown as ClipTextConfig;
    const m = new ClipTextModel(cfg, 0, true);
    compare(m.store, REF.text_encoder, 'text_encoder');
    m.dispose();
  });
});
