import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { buildNode, PluginRegistry, type ComponentNode, type ImageLoss } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { registryPackage } from '../../../registry/index.js';
import { plugins as lossPlugins } from '../../../registry/losses/index.js';
import { Lpips } from '../../../registry/metrics/lpips/lpips.js';

const reg = new PluginRegistry();
reg.loadPackage(registryPackage);
const build = (node: ComponentNode, baseDir?: string) => buildNode<ImageLoss>(node, reg, { path: 'experiment.loss', baseDir });
const val = (t: tf.Tensor) => t.dataSync()[0];
const isUserErr = (...parts: string[]) => (e: unknown) => e instanceof Error && e.name === 'UserError' && parts.every((p) => e.message.includes(p));
const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe('restoration losses', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('l1 / mse: closed forms on [-1, 1] values, weight scales value and term', async () => {
    const p = tf.tensor4d([0.5, -1, 0.25, 1], [1, 1, 2, 2]);
    const t = tf.tensor4d([-0.5, -1, 0.75, 0], [1, 1, 2, 2]);
    const l1 = (await build({ type: 'loss/l1' })).compute(p, t);
    close(val(l1.total), (1 + 0 + 0.5 + 1) / 4);
    const mse = (await build({ type: 'loss/mse', weight: 2 })).compute(p, t);
    close(val(mse.total), (2 * (1 + 0 + 0.25 + 1)) / 4);
    close(val(mse.terms.mse), val(mse.total));
    assert.deepEqual(Object.keys(l1.terms), ['l1']);
  });

  it('ssim: identical images give 0, a constant shift only moves luminance, too-small images are a UserError', async () => {
    const loss = await build({ type: 'loss/ssim' });
    const img = tf.randomUniform([2, 16, 12, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
    close(val(loss.compute(img, img).total), 0, 1e-6);
    // a pure offset leaves variances and covariance unchanged: only the luminance factor drops below 1
    const shifted = tf.add(img, 0.2) as tf.Tensor4D;
    const v = val(loss.compute(shifted, img).total);
    assert.ok(v > 0 && v < 0.2, `${v}`);
    assert.throws(() => loss.compute(tf.zeros([1, 10, 32, 3]) as tf.Tensor4D, tf.zeros([1, 10, 32, 3]) as tf.Tensor4D), isUserErr('loss/ssim', '10x32', '11x11'));
    // the gradient at out-of-range predictions is not cut by a clamp
    const g = tf.grad((x: tf.Tensor) => loss.compute(x as tf.Tensor4D, img).total)(tf.mul(img, 1.5));
    assert.ok(g.dataSync().some((x) => x !== 0) && g.dataSync().every(Number.isFinite));
  });

  it('shapes must agree (a wiring bug: RangeError)', async () => {
    const loss = await build({ type: 'loss/mse' });
    assert.throws(() => loss.compute(tf.zeros([1, 4, 4, 3]) as tf.Tensor4D, tf.zeros([1, 4, 5, 3]) as tf.Tensor4D), RangeError);
  });

  it('lpips: missing or absent weights are UserErrors naming the option, the loss and the converter', async () => {
    await assert.rejects(build({ type: 'loss/lpips' }), isUserErr('experiment.loss.weights', 'loss/lpips', 'convert_lpips_weights.py'));
    const dir = mkdtempSync(join(tmpdir(), 'rass-lpips-loss-'));
    try {
      assert.equal(existsSync(join(dir, 'w.safetensors')), false);
      await assert.rejects(build({ type: 'loss/lpips', net: 'vgg', weights: 'w.safetensors' }, dir), isUserErr('experiment.loss.weights', join(dir, 'w.safetensors')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lpips gradient stays finite where a feature vector is all zero (ReLU-dead pixels)', () => {
    // every first-layer unit dead (weights 0, bias -1): all taps are zero, the norm is sqrt(0)
    const shapes = (JSON.parse(readFileSync(join(process.cwd(), 'tests/fixtures/losses/image.json'), 'utf8')).cases as { name: string; shapes: Record<string, number[]> }[])
      .find((c) => c.name === 'lpips-alex')?.shapes as Record<string, number[]>;
    const m = new Map(Object.entries(shapes).map(([k, shape]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return [k, { shape, data: new Float32Array(n).fill(k === 'features.0.bias' ? -1 : k.startsWith('lin') ? 1 : 0) }];
    }));
    const net = new Lpips('alex', m, 'dead.safetensors', 'loss/lpips');
    const a = tf.randomUniform([1, 48, 40, 3], -1, 1, 'float32', 7) as tf.Tensor4D;
    const b = tf.randomUniform([1, 48, 40, 3], -1, 1, 'float32', 8) as tf.Tensor4D;
    const g = tf.grad((x: tf.Tensor) => tf.mean(net.distanceTensor(x as tf.Tensor4D, b)) as tf.Scalar)(a);
    assert.ok(g.dataSync().every((x) => x === 0), 'zero gradient, no NaN');
    net.dispose();
  });

  it('weighted-sum: weights, ids (default: the loss name), nested sums report id.term, terms add up to the total', async () => {
    const p = tf.randomUniform([1, 12, 12, 3], -1, 1, 'float32', 2) as tf.Tensor4D;
    const t = tf.randomUniform([1, 12, 12, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    const loss = await build({
      type: 'loss/weighted-sum',
      terms: [
        { loss: { type: 'loss/mse' }, weight: 1 },
        { id: 'pix', loss: { type: 'loss/weighted-sum', terms: [{ loss: { type: 'loss/l1' }, weight: 3 }, { loss: { type: 'loss/ssim' } }] }, weight: 0.5 },
      ],
    });
    const r = loss.compute(p, t);
    const mse = val((await build({ type: 'loss/mse' })).compute(p, t).total);
    const l1 = val((await build({ type: 'loss/l1' })).compute(p, t).total);
    const ssim = val((await build({ type: 'loss/ssim' })).compute(p, t).total);
    assert.deepEqual(Object.keys(r.terms), ['mse', 'pix.l1', 'pix.ssim']);
    close(val(r.terms['pix.l1']), 1.5 * l1);
    close(val(r.terms['pix.ssim']), 0.5 * ssim);
    close(val(r.total), mse + 1.5 * l1 + 0.5 * ssim, 1e-5);
    const g = tf.grad((x: tf.Tensor) => loss.compute(x as tf.Tensor4D, t).total)(p);
    // the gradient is the weighted sum of the parts' gradients (mse and l1 written out, ssim's own)
    const gm = tf.grad((x: tf.Tensor) => tf.add(tf.mean(tf.squaredDifference(x, t)), tf.mul(tf.mean(tf.abs(tf.sub(x, t))), 1.5)) as tf.Scalar)(p);
    const ssimLoss = await build({ type: 'loss/ssim' });
    const gs = tf.grad((x: tf.Tensor) => ssimLoss.compute(x as tf.Tensor4D, t).total)(p);
    const want = tf.add(gm, tf.mul(gs, 0.5));
    assert.ok(tf.max(tf.abs(tf.sub(g, want))).dataSync()[0] < 1e-6);
  });

  it('weighted-sum: duplicate ids, an attention loss, or a non-loss node are UserErrors naming the entry', async () => {
    await assert.rejects(build({ type: 'loss/weighted-sum', terms: [{ loss: { type: 'loss/mse' } }, { loss: { type: 'loss/mse' }, weight: 2 }] }), isUserErr('experiment.loss.terms[1]', 'duplicate term id "mse"', 'experiment.loss.terms[0]'));
    await assert.rejects(build({ type: 'loss/weighted-sum', terms: [{ loss: { type: 'loss/scl' } }] }), isUserErr('experiment.loss.terms[0].loss', 'loss/scl', 'not a restoration loss'));
    await assert.rejects(build({ type: 'loss/weighted-sum', terms: [{ loss: { type: 'tagger/none' } }] }), isUserErr('terms[0].loss.type', '^loss/', 'tagger/none'));
  });

  it('every folder under registry/losses is a plugin listed in registry/losses/index.ts', () => {
    // common/ holds what several losses share (the image-loss wrapper), not a plugin.
    const dirs = readdirSync(join(process.cwd(), 'registry/losses'), { withFileTypes: true }).filter((d) => d.isDirectory() && d.name !== 'common').map((d) => d.name).sort();
    assert.deepEqual(dirs, ['l1', 'lpips', 'mask2former', 'mse', 'per-pixel', 'scl', 'ssim', 'weighted-sum']);
    assert.deepEqual(lossPlugins.map((p) => p.name).sort(), dirs);
  });
});
