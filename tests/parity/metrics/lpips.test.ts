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
import { Lpips, type LpipsNet } from '../../../registry/metrics/lpips/lpips.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';
import { f32FromBase64, hashInitTensors } from './_hash-init.js';

const fx = JSON.parse(readFileSync(resolve(process.cwd(), 'tests/fixtures/metrics/lpips.json'), 'utf8'));

const weightsFor = (c: { tensor_names_sorted: string[]; shapes: Record<string, number[]> }) => hashInitTensors(c.tensor_names_sorted, c.shapes, true);

const f32 = f32FromBase64;

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
      // the metric path: RGB images in [0, 255] enter as lpips' normalize=True does (x / 255 * 2 - 1)
      const u8 = (t: tf.Tensor4D) => Uint8Array.from(tf.tidy(() => tf.round(tf.mul(tf.add(tf.slice(t, [0, 0, 0, 0], [1, h, w, 3]), 1), 127.5)).dataSync()));
      const [ua, ub] = [u8(a), u8(b)];
      const viaImages = model.imageDistance({ data: ua, height: h, width: w, channels: 3 }, { data: ub, height: h, width: w, channels: 3 });
      const ref = tf.tidy(() => {
        const norm = (px: Uint8Array) => tf.sub(tf.mul(tf.div(tf.tensor4d(Float32Array.from(px), [1, h, w, 3]), 255), 2), 1) as tf.Tensor4D;
        return model.distance(norm(ua), norm(ub))[0] as number;
      });
      assert.ok(Math.abs(viaImages - ref) <= 1e-6, `${c.net} imageDistance ${viaImages} vs normalize=True ${ref}`);
      a.dispose();
      b.dispose();
      model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
