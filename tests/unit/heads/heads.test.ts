import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Rng, UserError, type PluginContext } from '../../../framework/api.js';
import type { FeatureLevel, SegHead } from '../../../framework/contracts/head.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { Params } from '../../../registry/heads/common/nn.js';
import { MSDeformAttn } from '../../../registry/heads/mask2former/pixel-decoder.js';
import { fpnSegHead } from '../../../registry/heads/fpn-seg/plugin.js';
import { mask2formerHead } from '../../../registry/heads/mask2former/plugin.js';
import { attentionMask } from '../../../registry/heads/mask2former/mask2former.js';
import { MaskClassificationLoss, MASK2FORMER_LOSS_DEFAULTS } from '../../../registry/losses/mask2former/mask-criterion.js';
import { PerPixelLoss } from '../../../registry/losses/per-pixel/per-pixel.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';
import { assertGradientsRegistered } from '../../helpers/gradients.js';

const ctx = (seed = 5): PluginContext => ({
  path: 'model.head',
  seed,
  log: { info: () => undefined, warn: () => undefined, debug: () => undefined },
  resolvePath: (p) => resolve(p),
  build: () => Promise.reject(new Error('unused')),
  services: {},
});

const CH = [8, 12, 16, 20];
const TINY = { numClasses: 5, inChannels: CH, inStrides: [4, 8, 16, 32], hidden: 32, queries: 4, decoderLayers: 2, heads: 4, ffn: 64, pixelDecoder: 'msdeform', pixelDecoderLayers: 1, pixelDecoderHeads: 4, pixelDecoderPoints: 2, pixelDecoderFfn: 64, maskDim: 32, groups: 8 };

function levels(N: number, H: number, W: number, seed = 1): FeatureLevel[] {
  const r = Rng.derive(seed, 'feats');
  return [4, 8, 16, 32].map((s, i) => {
    const shape: [number, number, number, number] = [N, H / s, W / s, CH[i]];
    return { stride: s, features: tf.tensor4d(r.fillNormal(new Float32Array(shape.reduce((a, b) => a * b))) as Float32Array, shape) };
  });
}

const GRAD_KERNELS = ['Conv2D', 'GatherV2', 'Softmax', 'LogSoftmax', 'ResizeBilinear', 'Tile', 'Floor', 'Cast', 'ClipByValue', 'Sum', 'Mean'];

describe('segmentation heads', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('mask2former (tiny, msdeform and fpn pixel decoders): shapes, deep supervision, semantic = softmax x sigmoid, deterministic', async () => {
    for (const pixelDecoder of ['msdeform', 'fpn']) {
      const head = (await mask2formerHead.create({ ...TINY, pixelDecoder } as never, ctx())) as SegHead;
      const feats = levels(2, 64, 64);
      const out = head.forward(feats);
      assert.equal(out.kind, 'mask-classification');
      if (out.kind !== 'mask-classification') return;
      assert.deepEqual(out.final.classLogits.shape, [2, 4, 6]);
      assert.deepEqual(out.final.maskLogits.shape, [2, 16, 16, 4]);
      assert.equal(out.aux.length, 2, 'one auxiliary prediction per decoder layer (incl. the one before the first layer)');
      const sem = head.semantic(out, 64, 64);
      assert.deepEqual(sem.shape, [2, 64, 64, 5]);
      // reference: softmax over C+1, drop no-object, times sigmoid of the upsampled masks
      const ref = tf.tidy(() => {
        const p = tf.slice(tf.softmax(out.final.classLogits), [0, 0, 0], [2, 4, 5]);
        const m = tf.sigmoid(tf.image.resizeBilinear(out.final.maskLogits, [64, 64], false, true));
        return tf.einsum('nhwq,nqc->nhwc', m, p);
      });
      assert.ok(tf.max(tf.abs(tf.sub(sem, ref))).dataSync()[0] < 1e-5);
      const again = (await mask2formerHead.create({ ...TINY, pixelDecoder } as never, ctx())) as SegHead;
      const out2 = again.forward(feats);
      if (out2.kind === 'mask-classification') assert.deepEqual(out2.final.maskLogits.dataSync(), out.final.maskLogits.dataSync());
      tf.dispose([sem, ref, out.final.classLogits, out.final.maskLogits, ...out.aux.flatMap((a) => [a.classLogits, a.maskLogits]), ...feats.map((f) => f.features)]);
      if (out2.kind === 'mask-classification') tf.dispose([out2.final.classLogits, out2.final.maskLogits, ...out2.aux.flatMap((a) => [a.classLogits, a.maskLogits])]);
      head.dispose();
      again.dispose();
    }
  });

  it('forward + loss does not leak tensors (mask2former and fpn-seg)', async () => {
    const m2f = (await mask2formerHead.create(TINY as never, ctx())) as SegHead;
    const fpn = (await fpnSegHead.create({ numClasses: 5, inChannels: CH, inStrides: [4, 8, 16, 32], hidden: 16, groups: 4 } as never, ctx())) as SegHead;
    const feats = levels(1, 32, 32);
    const labels = new Uint8Array(32 * 32).map((_, i) => (i % 32 < 16 ? 1 : 3));
    const targets = { labels, batch: 1, height: 32, width: 32, ignoreIndex: 255 };
    const mLoss = new MaskClassificationLoss({ ...MASK2FORMER_LOSS_DEFAULTS, numClasses: 5, numPoints: 64 });
    const pLoss = new PerPixelLoss({ numClasses: 5, ceWeight: 1, diceWeight: 1, smooth: 1 });
    await assertTensorCountFlat((i) => {
      tf.tidy(() => {
        const a = mLoss.compute(m2f.forward(feats), targets, Rng.derive(1, 'step', i)).total.dataSync()[0];
        const fOut = fpn.forward(feats);
        if (fOut.kind === 'per-pixel') assert.deepEqual(fOut.logits.shape, [1, 8, 8, 5]);
        const b = pLoss.compute(fOut, targets).total.dataSync()[0];
        assert.ok(Number.isFinite(a) && a > 0 && Number.isFinite(b) && b > 0);
      });
    }, { label: 'head forward + loss' });
    m2f.dispose();
    fpn.dispose();
    feats.forEach((f) => f.features.dispose());
  });

  it('a few training steps reduce the mask2former loss', async () => {
    assertGradientsRegistered(GRAD_KERNELS);
    const head = (await mask2formerHead.create(TINY as never, ctx())) as SegHead;
    const feats = levels(1, 32, 32);
    const labels = new Uint8Array(32 * 32).map((_, i) => (i % 32 < 16 ? 1 : 3));
    const targets = { labels, batch: 1, height: 32, width: 32, ignoreIndex: 255 };
    const loss = new MaskClassificationLoss({ ...MASK2FORMER_LOSS_DEFAULTS, numClasses: 5, numPoints: 64 });
    const opt = tf.train.adam(1e-3);
    const vars = [...head.params.values()];
    const values: number[] = [];
    await assertTensorCountFlat((i) => {
      const v = opt.minimize(() => loss.compute(head.forward(feats), targets, Rng.derive(1, 'step', i)).total, true, vars);
      values.push((v as tf.Scalar).dataSync()[0]);
      v?.dispose();
    }, { warmup: 2, steps: 8, label: 'mask2former training step' });
    assert.ok(values[values.length - 1] < values[0], `loss ${values[0]} -> ${values[values.length - 1]}`);
    head.dispose();
    opt.dispose();
  });

  it('fpn-seg + per-pixel loss: training steps reduce the loss without leaking', async () => {
    assertGradientsRegistered(GRAD_KERNELS);
    const head = (await fpnSegHead.create({ numClasses: 5, inChannels: CH, inStrides: [4, 8, 16, 32], hidden: 16, groups: 4 } as never, ctx())) as SegHead;
    const feats = levels(1, 32, 32);
    const labels = new Uint8Array(32 * 32).map((_, i) => (Math.floor(i / 32) < 16 ? 2 : 4));
    const targets = { labels, batch: 1, height: 32, width: 32, ignoreIndex: 255 };
    const loss = new PerPixelLoss({ numClasses: 5, ceWeight: 1, diceWeight: 1, smooth: 1 });
    const opt = tf.train.adam(1e-2);
    const values: number[] = [];
    await assertTensorCountFlat(() => {
      const v = opt.minimize(() => loss.compute(head.forward(feats), targets).total, true, [...head.params.values()]);
      values.push((v as tf.Scalar).dataSync()[0]);
      v?.dispose();
    }, { warmup: 2, steps: 6, label: 'fpn-seg training step' });
    assert.ok(values[values.length - 1] < values[0] * 0.9, `loss ${values[0]} -> ${values[values.length - 1]}`);
    head.dispose();
    opt.dispose();
    feats.forEach((f) => f.features.dispose());
  });

  it('MSDeformAttn with zero offsets reads the value at the reference point (single level, analytic)', () => {
    const p = new Params(3);
    const attn = new MSDeformAttn(p, 'a', 8, 1, 2, 3);
    (attn.offsets.b as tf.Variable).assign(tf.zeros([2 * 1 * 3 * 2]));
    const N = 1;
    const h = 3;
    const w = 4;
    const input = tf.randomNormal([N, h * w, 8], 0, 1, 'float32', 9) as tf.Tensor3D;
    const refs: number[] = [];
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) refs.push((x + 0.5) / w, (y + 0.5) / h);
    const out = attn.apply(input, tf.tensor2d(refs, [h * w, 2]), input, [[h, w]]);
    // every sample point sits on its own pixel centre: output = output_proj(value_proj(input))
    const want = attn.outputProj.apply(attn.valueProj.apply(input));
    assert.ok(tf.max(tf.abs(tf.sub(out, want))).dataSync()[0] < 1e-5);
    p.dispose();
  });

  it("masked attention: -1e9 where a query's mask is below 0.5, nowhere for an empty query, per head; no gradient", () => {
    // [N=2, h=2, w=3, Q=3] logits at the memory size (no resize): query 1 of image 0 is empty everywhere
    const N = 2;
    const hw = 6;
    const Q = 3;
    const heads = 2;
    const r = Rng.derive(3, 'mask');
    const logits = Float32Array.from({ length: N * hw * Q }, () => r.normal());
    for (let i = 0; i < hw; i++) logits[i * Q + 1] = -1 - i;
    logits[(hw + 2) * Q + 0] = 0; // exactly 0 = sigmoid 0.5: attended
    const x = tf.tensor4d(logits, [N, 2, 3, Q]);
    const m = attentionMask(x, [2, 3], heads);
    assert.deepEqual(m.shape, [N * heads, Q, hw]);
    const got = m.dataSync();
    for (let n = 0; n < N; n++)
      for (let h = 0; h < heads; h++)
        for (let q = 0; q < Q; q++) {
          const empty = Array.from({ length: hw }, (_, i) => logits[(n * hw + i) * Q + q] as number).every((v) => v < 0);
          for (let i = 0; i < hw; i++) {
            const want = !empty && (logits[(n * hw + i) * Q + q] as number) < 0 ? -1e9 : 0;
            assert.equal((got[((n * heads + h) * Q + q) * hw + i] as number) + 0, want, `n ${n} head ${h} q ${q} i ${i}`);
          }
        }
    const g = tf.grad((t: tf.Tensor) => tf.sum(attentionMask(t as tf.Tensor4D, [2, 3], heads)))(x);
    assert.equal(tf.max(tf.abs(g)).dataSync()[0], 0);
    tf.dispose([x, m, g]);
  });

  it('config errors name the key', async () => {
    await assert.rejects(async () => mask2formerHead.create({ ...TINY, hidden: 30 } as never, ctx()), (e: unknown) => e instanceof UserError && /model\.head\.hidden/.test(e.message));
    await assert.rejects(async () => fpnSegHead.create({ numClasses: 2, inChannels: [4, 4], inStrides: [4, 8, 16], hidden: 8, groups: 4 } as never, ctx()), (e: unknown) => e instanceof UserError && /inStrides/.test(e.message));
    const head = (await fpnSegHead.create({ numClasses: 2, inChannels: CH, inStrides: [4, 8, 16, 32], hidden: 8, groups: 4 } as never, ctx())) as SegHead;
    assert.throws(() => head.forward(levels(1, 32, 32).slice(1)), /expected feature strides/);
    head.dispose();
  });
});
