import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { useBackend } from '../../../framework/engine/backend.js';
import { parseSafetensors, readSafetensors, toFloat32 } from '../../../framework/engine/safetensors.js';
import { ClipTextModel, type ClipTextConfig } from '../../../registry/backbones/sd/clip.js';
import { loadWeights } from '../../../registry/backbones/sd/weights.js';
import { readFileSync } from 'node:fs';

const TE = join(process.cwd(), 'tests/fixtures/backbones/tiny-sd/text_encoder');

/** Re-encode fp32 safetensors entries as bf16 (truncation of the low 16 bits, by hand: the writer has no BF16). */
function toBf16File(tensors: Map<string, { shape: number[]; data: Float32Array }>): Uint8Array {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [k, t] of tensors) {
    header[k] = { dtype: 'BF16', shape: t.shape, data_offsets: [off, off + 2 * t.data.length] };
    off += 2 * t.data.length;
  }
  let json = JSON.stringify(header);
  while (json.length % 8) json += ' ';
  const out = new Uint8Array(8 + json.length + off);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(json.length), true);
  out.set(Buffer.from(json), 8);
  let p = 8 + json.length;
  for (const t of tensors.values()) {
    const u32 = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    for (const w of u32) {
      dv.setUint16(p, w >>> 16, true);
      p += 2;
    }
  }
  return out;
}

describe('bf16 / fp16 weights are upcast, not refused', () => {
  before(async () => {
    await useBackend('cpu');
  });
  it('a bf16 copy of the CLIP weights loads and gives nearly the fp32 output', () => {
    const cfg = JSON.parse(readFileSync(join(TE, 'config.json'), 'utf8')) as ClipTextConfig;
    const fp32 = readSafetensors(join(TE, 'model.safetensors')).tensors;
    const plain = new Map([...fp32].map(([k, e]) => [`text_model.${k}`, { shape: e.shape, data: toFloat32(e) }]));
    const bf16 = parseSafetensors(toBf16File(plain), 'bf16-copy').tensors;
    assert.equal([...bf16.values()][0]?.dtype, 'BF16');
    const a = new ClipTextModel(cfg);
    const b = new ClipTextModel(cfg);
    loadWeights(a.store, new Map([...fp32].map(([k, e]) => [`text_model.${k}`, e])), 'fp32');
    loadWeights(b.store, bf16, 'bf16');
    const ids = tf.tensor2d([[598, 100, 200, 599]], [1, 4], 'int32');
    const ya = a.forward(ids).lastHiddenState;
    const yb = b.forward(ids).lastHiddenState;
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0] as number);
    assert.ok(d > 0 && d < 0.05, `bf16 vs fp32 output differs by ${d}`);
    tf.dispose([ids, ya, yb]);
    a.dispose();
    b.dispose();
  });
});
