/**
 * Restoration losses vs PyTorch (tests/fixtures/losses/image.json, made by
 * scripts/fixtures/losses/make_fixtures.py in float64): l1, mse, ssim (BasicSR's _ssim_pth),
 * lpips (lpips==0.1.4, alex / squeeze / vgg, the metric fixture's seeded weights written to a
 * safetensors file and loaded like a user's) and weighted-sum (1 mse + 2 lpips + 0.5 ssim).
 * Each loss is built through the registry from a config node; value within 1e-4 (relative above 1)
 * and the gradient w.r.t. the prediction within 1e-4 of the largest reference gradient element.
 * Backend: cpu, except VGG on wasm (the cpu backend's conv backprop takes minutes for VGG16).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeSafetensors, type ComponentNode, type ImageLoss } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { ssim as ssimMetric } from '../../../registry/metrics/common/psnr-ssim.js';
import { hashInitTensors } from '../metrics/_hash-init.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';
import { assertClose, build, f32, scalar } from './_fixture.js';

const fx = JSON.parse(readFileSync(join(process.cwd(), 'tests/fixtures/losses/image.json'), 'utf8'));
const shape = fx.shape_nhwc as [number, number, number, number];

interface Case { name: string; value: number; grad_pred_f32_base64: string; net?: string; tensor_names_sorted?: string[]; shapes?: Record<string, number[]>; terms?: Record<string, number> }

describe('restoration losses vs PyTorch (value and input gradient)', () => {
  let dir: string;
  const weightsFile = (c: Case) => {
    const file = join(dir, `${c.net}.safetensors`);
    writeSafetensors(file, hashInitTensors(c.tensor_names_sorted as string[], c.shapes as Record<string, number[]>, true));
    return file;
  };
  const nodeFor = (c: Case): ComponentNode => {
    if (c.name.startsWith('lpips-')) return { type: 'loss/lpips', net: c.net, weights: weightsFile(c) };
    if (c.name === 'weighted') {
      const w = c.terms as Record<string, number>;
      return {
        type: 'loss/weighted-sum',
        terms: [
          { loss: { type: 'loss/mse' }, weight: w.mse },
          { loss: { type: 'loss/lpips', net: c.net, weights: weightsFile(c) }, weight: w.lpips },
          { id: 'structure', loss: { type: 'loss/ssim' }, weight: w.ssim },
        ],
      };
    }
    return { type: `loss/${c.name}` };
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rass-loss-parity-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const c of fx.cases as Case[]) {
    const backend = c.net === 'vgg' && c.name !== 'weighted' ? 'wasm' : 'cpu';
    it(`${c.name}: value and d/dpred match torch (${backend})`, async () => {
      await useBackend(backend);
      const pred = tf.tensor4d(f32(fx.pred_f32_base64), shape);
      const target = tf.tensor4d(f32(fx.target_f32_base64), shape);
      const loss = await build<ImageLoss>(nodeFor(c));
      const r = tf.tidy(() => {
        const out = loss.compute(pred, target);
        return { total: scalar(out.total), terms: Object.fromEntries(Object.entries(out.terms).map(([k, v]) => [k, scalar(v)])) };
      });
      assert.ok(Math.abs(r.total - c.value) <= 1e-4 * Math.max(1, Math.abs(c.value)), `${c.name}: ${r.total} vs torch ${c.value}`);
      // terms are weighted and add up to the total, named as documented
      const termSum = Object.values(r.terms).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(termSum - r.total) <= 1e-5 * Math.max(1, r.total), `${c.name}: terms ${JSON.stringify(r.terms)} vs total ${r.total}`);
      assert.deepEqual(Object.keys(r.terms), c.name === 'weighted' ? ['mse', 'lpips', 'structure'] : [c.name.replace(/-.*/, '')]);
      const g = tf.grad((p: tf.Tensor) => loss.compute(p as tf.Tensor4D, target).total)(pred);
      const got = g.dataSync() as Float32Array;
      g.dispose();
      assertClose(got, f32(c.grad_pred_f32_base64), 1e-4, `${c.name} grad`);
      if (backend === 'cpu') {
        await assertTensorCountFlat(() => {
          const gg = tf.grad((p: tf.Tensor) => loss.compute(p as tf.Tensor4D, target).total)(pred);
          gg.dispose();
        }, { warmup: 1, steps: 2, label: `${c.name} gradient step` });
      }
      tf.dispose([pred, target]);
    });
  }

  it('ssim loss = 1 - metric/psnr-ssim SSIM (BasicSR, float64) on the same images', async () => {
    await useBackend('cpu');
    const loss = await build<ImageLoss>({ type: 'loss/ssim' });
    const [N, H, W, C] = shape;
    const p = f32(fx.pred_f32_base64);
    const t = f32(fx.target_f32_base64);
    const value = tf.tidy(() => scalar(loss.compute(tf.tensor4d(p, shape), tf.tensor4d(t, shape)).total));
    let s = 0;
    for (let n = 0; n < N; n++) {
      const img = (a: Float32Array) => ({ data: Float64Array.from(a.subarray(n * H * W * C, (n + 1) * H * W * C), (v) => ((v + 1) / 2) * 255), height: H, width: W, channels: C });
      s += ssimMetric(img(p), img(t), { cropBorder: 0, testYChannel: false });
    }
    assert.ok(Math.abs(value - (1 - s / N)) < 1e-5, `${value} vs ${1 - s / N}`);
  });
});
