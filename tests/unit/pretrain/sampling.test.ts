/**
 * experiment/pretrain-ldm's pieces that do not need a trained model: the noise schedule
 * against diffusers' alphas_cumprod (and the one-step restorer's alphaBar), DDIM's timesteps
 * against diffusers' DDIMScheduler (leading spacing, steps_offset 1), the DDIM update against
 * its closed form under an oracle denoiser, the PNG encoder against sharp's decoder, and the
 * seeded data order.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { useBackend } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import type { ConditionalUNet } from '../../../framework/contracts/backbone.js';
import { alphaBar } from '../../../registry/backbones/sd/one-step.js';
import { alphasCumprod, ddimTimesteps } from '../../../experiments/pretrain-ldm/noise-schedule.js';
import { ddimSample } from '../../../experiments/pretrain-ldm/ddim.js';
import { encodePng } from '../../../framework/image/png.js';
import { tileGrid } from '../../../experiments/common/images.js';
import { DataOrder, imageBatch } from '../../../experiments/pretrain-ldm/data.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';

/**
 * A UNet stand-in that predicts the exact noise for a known clean latent x0:
 * eps(x_t, t) = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t). With it DDIM's x0 estimate is exact at
 * every step, so eps stays the first step's and the result has a closed form.
 */
function oracle(x0: tf.Tensor4D, ac: Float64Array, calls: { t: number; ctx: number[] }[]): ConditionalUNet {
  return {
    run: (x: tf.Tensor4D, t: tf.Tensor1D | number, ctx: tf.Tensor3D) => {
      const tt = t as number;
      const first = tf.slice(ctx, [0, 0, 0], [-1, 1, 1]);
      calls.push({ t: tt, ctx: Array.from(first.dataSync()) });
      const ab = ac[tt] as number;
      const b = x.shape[0];
      const target = b === x0.shape[0] ? x0 : tf.concat([x0, x0], 0);
      const eps = tf.div(tf.sub(x, tf.mul(target, Math.sqrt(ab))), Math.sqrt(1 - ab));
      // a sample with the conditional context (first value 1) gets the oracle, the unconditional one (0) zero
      return tf.mul(eps, tf.reshape(first, [b, 1, 1, 1])) as tf.Tensor4D;
    },
  } as unknown as ConditionalUNet;
}

describe('pretrain-ldm: schedule, DDIM, PNG, data order', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it("alphas_cumprod equals diffusers' scaled_linear schedule and the restorer's alphaBar", () => {
    const ac = alphasCumprod();
    assert.equal(ac.length, 1000);
    // diffusers DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod (float32)
    for (const [t, ref] of [[999, 0.00466009508818388], [500, 0.27633246779441833], [1, 0.9982960224151611]] as const) {
      assert.ok(Math.abs((ac[t] as number) - ref) < 1e-6 * Math.max(ref, 1e-3) + 1e-8, `t=${t}: ${ac[t]} vs ${ref}`);
    }
    for (const t of [0, 1, 17, 250, 999]) assert.ok(Math.abs((ac[t] as number) - alphaBar(t)) < 1e-12, `t=${t}`);
  });

  it("DDIM timesteps are diffusers' (leading spacing, steps_offset 1)", () => {
    // DDIMScheduler.from_config(SD 2.1-base).set_timesteps(n).timesteps
    assert.deepEqual(ddimTimesteps(4), [751, 501, 251, 1]);
    assert.deepEqual(ddimTimesteps(10), [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    assert.deepEqual(ddimTimesteps(3), [667, 334, 1]);
    assert.throws(() => ddimTimesteps(0), RangeError);
  });

  it('DDIM (eta 0) with an oracle denoiser lands on the closed form; guidance 1 ignores the unconditional branch', () => {
    const ac = alphasCumprod();
    const r = Rng.derive(3, 'ddim-test');
    const x0 = tf.tensor4d(r.fillNormal(new Float32Array(2 * 4 * 4 * 4)) as Float32Array, [2, 4, 4, 4]);
    const noise = tf.tensor4d(r.fillNormal(new Float32Array(2 * 4 * 4 * 4)) as Float32Array, [2, 4, 4, 4]);
    const cond = tf.ones([1, 3, 2]) as tf.Tensor3D;
    const uncond = tf.zeros([1, 3, 2]) as tf.Tensor3D;
    const calls: { t: number; ctx: number[] }[] = [];
    const out = ddimSample(oracle(x0, ac, calls), noise, cond, uncond, ac, { steps: 5, guidanceScale: 1 });
    assert.deepEqual(calls.map((c) => c.t), ddimTimesteps(5));
    assert.ok(calls.every((c) => c.ctx.length === 2 && c.ctx.every((v) => v === 1)), 'guidance 1 runs only the conditional context');
    // eps is fixed by the first step: (x_T - sqrt(ab_T) x0) / sqrt(1 - ab_T); the last step goes to alphas_cumprod[0]
    const T = ddimTimesteps(5)[0] as number;
    const eps = tf.div(tf.sub(noise, tf.mul(x0, Math.sqrt(ac[T] as number))), Math.sqrt(1 - (ac[T] as number)));
    const expected = tf.add(tf.mul(x0, Math.sqrt(ac[0] as number)), tf.mul(eps, Math.sqrt(1 - (ac[0] as number))));
    const err = tf.max(tf.abs(tf.sub(out, expected))).dataSync()[0] as number;
    assert.ok(err < 1e-4, `max |ddim - closed form| = ${err}`);

    // guidance g: eps_u + g (eps_c - eps_u) with eps_u = 0 is g x the oracle's eps, so x0's estimate is off
    // by a known factor; check one step against the formula
    const calls2: { t: number; ctx: number[] }[] = [];
    const one = ddimSample(oracle(x0, ac, calls2), noise, cond, uncond, ac, { steps: 1, guidanceScale: 2.5 });
    assert.deepEqual(calls2.map((c) => c.ctx), [[0, 0, 1, 1]], 'one batched call: unconditional then conditional');
    const t1 = ddimTimesteps(1)[0] as number;
    const e1 = tf.mul(tf.div(tf.sub(noise, tf.mul(x0, Math.sqrt(ac[t1] as number))), Math.sqrt(1 - (ac[t1] as number))), 2.5);
    const x0hat = tf.div(tf.sub(noise, tf.mul(e1, Math.sqrt(1 - (ac[t1] as number)))), Math.sqrt(ac[t1] as number));
    const exp1 = tf.add(tf.mul(x0hat, Math.sqrt(ac[0] as number)), tf.mul(e1, Math.sqrt(1 - (ac[0] as number))));
    const err1 = tf.max(tf.abs(tf.sub(one, exp1))).dataSync()[0] as number;
    assert.ok(err1 < 1e-4, `guided step: ${err1}`);
    tf.dispose([x0, noise, cond, uncond, out, eps, expected, one, e1, x0hat, exp1]);
  });

  it('DDIM sampling leaks no tensors', async () => {
    const ac = alphasCumprod();
    const x0 = tf.ones([1, 2, 2, 4]) as tf.Tensor4D;
    const noise = tf.zeros([1, 2, 2, 4]) as tf.Tensor4D;
    const cond = tf.ones([1, 3, 2]) as tf.Tensor3D;
    const uncond = tf.zeros([1, 3, 2]) as tf.Tensor3D;
    const unet = oracle(x0, ac, []);
    await assertTensorCountFlat(() => ddimSample(unet, noise, cond, uncond, ac, { steps: 3, guidanceScale: 2 }).dispose(), { warmup: 1, steps: 2, label: 'ddim' });
    tf.dispose([x0, noise, cond, uncond]);
  });

  it('PNG grids decode (sharp) to the pixels written', async () => {
    const r = Rng.derive(5, 'png');
    const tiles = [0, 1, 2].map(() => Uint8Array.from({ length: 5 * 4 * 3 }, () => r.int(0, 255)));
    const g = tileGrid([[tiles[0] as Uint8Array, tiles[1] as Uint8Array], [tiles[2] as Uint8Array]], 5, 4, 2);
    assert.deepEqual([g.width, g.height], [2 * 4 + 3 * 2, 2 * 5 + 3 * 2]);
    const { data, info } = await sharp(Buffer.from(encodePng(g.rgb, g.width, g.height))).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [g.width, g.height, 3]);
    assert.deepEqual(new Uint8Array(data), g.rgb);
    // tile (1, 0) starts at x = 2, y = 2 + 5 + 2; its first pixel is tiles[2]'s; the empty cell stays white
    const at = (x: number, y: number) => Array.from(g.rgb.subarray((y * g.width + x) * 3, (y * g.width + x) * 3 + 3));
    assert.deepEqual(at(2, 9), Array.from((tiles[2] as Uint8Array).subarray(0, 3)));
    assert.deepEqual(at(2 + 4 + 2, 9), [255, 255, 255]);
  });

  it('data order: every epoch visits each index once; a batch depends only on (seed, step)', () => {
    const a = new DataOrder(11, 'vae', 10, 4);
    const seen = Array.from({ length: 5 }, (_, s) => a.indices(s)).flat(); // 20 positions = 2 epochs
    assert.deepEqual([...seen.slice(0, 10)].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual([...seen.slice(10)].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.notDeepEqual(seen.slice(0, 10), seen.slice(10), 'epochs are reshuffled');
    // a resumed run starts at step 3 with a fresh order object: same batches
    const b = new DataOrder(11, 'vae', 10, 4);
    assert.deepEqual([b.indices(3), b.indices(4)], [seen.slice(12, 16), seen.slice(16, 20)]);
    assert.notDeepEqual(new DataOrder(12, 'vae', 10, 4).indices(0), a.indices(0));
  });

  it('image batches scale to [-1, 1] and crop the requested windows', () => {
    const img = Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => i * 5);
    const set = { height: 4, width: 4, images: [img], tags: [[]] };
    const full = imageBatch(set, [0]);
    assert.deepEqual(full.shape, [1, 4, 4, 3]);
    assert.ok(Math.abs((full.dataSync()[7] as number) - (35 / 127.5 - 1)) < 1e-6);
    const crop = imageBatch(set, [0, 0], { size: 2, offsets: [[1, 2], [0, 0]] });
    assert.deepEqual(crop.shape, [2, 2, 2, 3]);
    const v = crop.dataSync();
    // window (y=1, x=2): first pixel is source pixel (1, 2) -> byte (1*4+2)*3 = 18
    assert.ok(Math.abs((v[0] as number) - ((18 * 5) / 127.5 - 1)) < 1e-6);
    // second row of that window starts at source (2, 2) -> byte 30
    assert.ok(Math.abs((v[6] as number) - ((30 * 5) / 127.5 - 1)) < 1e-6);
    assert.ok(Math.abs((v[12] as number) - -1) < 1e-6, 'second window starts at (0, 0)');
    tf.dispose([full, crop]);
  });
});
