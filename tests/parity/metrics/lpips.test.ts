/**
 * LPIPS parity with the `lpips` package 0.1.4 (tests/fixtures/metrics/lpips.json, made by
 * scripts/fixtures/metrics/make_lpips.py): the same seeded weights (an integer-hash uniform init both
 * sides compute; VGG16's are too big to commit) go through a safetensors file and the same loader a
 * user's converted weights use; distances within 1e-4 for alex, vgg and squeeze.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { tf, writeSafetensors } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { Lpips, type LpipsNet } from '../../../registry/metrics/lpips.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';

const fx = JSON.parse(readFileSync(resolve(process.cwd(), 'tests/fixtures/metrics/lpips.json'), 'utf8'));

/** Mirrors hash_uniform in make_lpips.py: u32 hash of (tensor index, element index) -> uniform [-bound, bound), float32. */
function hashUniform(nameIndex: number, n: number, bound: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // (i * 2654435761 + nameIndex * 40503 + 12345) mod 2^32, exactly
    let x = (Math.imul(i, 2654435761 | 0) + Math.imul(nameIndex, 40503) + 12345) >>> 0;
    for (let r = 0; r < 2; r++) {
      x = (x ^ (x >>> 16)) >>> 0;
      x = Math.imul(x, 0x45d9f3b) >>> 0;
    }
    x = (x ^ (x >>> 16)) >>> 0;
    out[i] = (x / 4294967296 - 0.5) * 2 * bound;
  }
  return out;
}

function weightsFor(c: { tensor_names_sorted: string[]; shapes: Record<string, number[]> }) {
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  c.tensor_names_sorted.forEach((k, idx) => {
    const shape = c.shapes[k];
    const n = shape.reduce((a, b) => a * b, 1);
    const wshape = k.endsWith('bias') ? c.shapes[k.slice(0, -4) + 'weight'] : shape;
    const fanIn = wshape.slice(1).reduce((a, b) => a * b, 1);
    let u = hashUniform(idx, n, 1 / Math.sqrt(fanIn));
    if (k.startsWith('lin')) u = hashUniform(idx, n, 1).map(Math.abs);
    tensors[k] = { dtype: 'F32', shape, data: u };
  });
  return tensors;
}

const f32 = (b64: string) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);

for (const c of fx.cases) {
  test(`lpips ${c.net} matches lpips==0.1.4`, async () => {
    await useBackend('cpu');
    const dir = mkdtempSync(join(tmpdir(), 'rass-lpips-'));
    try {
      const file = join(dir, `${c.net}.safetensors`);
      writeSafetensors(file, weightsFor(c));
      const model = Lpips.fromFile(c.net as LpipsNet, file);
      const [n, ch, h, w] = fx.input_shape_nchw as number[];
      const nhwc = (b64: string) => tf.tidy(() => tf.transpose(tf.tensor4d(f32(b64), [n, ch, h, w]), [0, 2, 3, 1]) as tf.Tensor4D);
      const a = nhwc(fx.in0_f32_base64);
      const b = nhwc(fx.in1_f32_base64);
      let got: Float32Array = new Float32Array(0);
      await assertTensorCountFlat(() => {
        got = model.distance(a, b);
      }, { warmup: 1, steps: 1, label: `lpips ${c.net}` });
      (c.expected as number[]).forEach((e, i) => assert.ok(Math.abs(got[i] - e) <= fx.tolerance, `${c.net}[${i}]: ${got[i]} vs ${e}`));
      a.dispose();
      b.dispose();
      model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
