/**
 * loss/scl vs a PyTorch implementation of the same formula (tests/fixtures/losses/scl.json, made by
 * scripts/fixtures/losses/make_fixtures.py in float64): four captured layers (one self-attention
 * layer the default pattern must leave out), multi-token tags, a tag whose class is absent (empty
 * mask: excluded), a tag cut off by the prompt limit, an unmatched tag, an image size no grid divides, three
 * option sets (mean / sample-mean / sum reductions, term weights, layer regexes). Values within 1e-4
 * (relative above 1), gradients w.r.t. every selected map within 1e-4 of the largest element --
 * through `compute` and through prepare + computePrepared (the compiled step's path) with tight
 * and padded tag slots (max_tags).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { AttentionLoss, AttentionSample } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';
import { assertClose, build, f32, scalar } from './_fixture.js';

const fx = JSON.parse(readFileSync(join(process.cwd(), 'tests/fixtures/losses/scl.json'), 'utf8'));

interface FxSample { height: number; width: number; unmatched: string[]; targets: { tag: string; tokens: number[]; mask: number[] }[] }
const samples: AttentionSample[] = (fx.samples as FxSample[]).map((s) => ({
  height: s.height,
  width: s.width,
  unmatched: s.unmatched,
  targets: s.targets.map((t) => ({ tag: t.tag, tokens: t.tokens, mask: Uint8Array.from(t.mask) })),
}));

describe('loss/scl vs PyTorch (value and gradient w.r.t. the attention maps)', () => {
  let names: string[];
  let maps: tf.Tensor[];
  before(async () => {
    await useBackend('cpu');
    names = Object.keys(fx.maps);
    maps = names.map((n) => tf.tensor(f32(fx.maps[n].f32_base64), fx.maps[n].shape));
  });

  for (const c of fx.cases) {
    it(`${c.name}: layers ${JSON.stringify(c.layers)}, ${c.reduction}, weights ${c.token_weight}/${c.pixel_weight}`, async () => {
      const loss = await build<AttentionLoss>({ type: 'loss/scl', layers: c.layers, token_weight: c.token_weight, pixel_weight: c.pixel_weight, reduction: c.reduction });
      assert.deepEqual(loss.layers, c.layers);
      const asMap = (ts: readonly tf.Tensor[]) => new Map(names.map((n, i) => [n, ts[i]]));
      const r = tf.tidy(() => {
        const out = loss.compute(asMap(maps), samples);
        return { total: scalar(out.total), token: scalar(out.terms.scl_token), pixel: scalar(out.terms.scl_pixel), matched: out.matched, unmatched: out.unmatched };
      });
      assert.deepEqual({ matched: r.matched, unmatched: r.unmatched }, { matched: c.matched, unmatched: c.unmatched });
      for (const [got, want, what] of [[r.total, c.total, 'total'], [r.token, c.scl_token, 'scl_token'], [r.pixel, c.scl_pixel, 'scl_pixel']] as const) {
        assert.ok(Math.abs(got - want) <= 1e-4 * Math.max(1, Math.abs(want)), `${c.name} ${what}: ${got} vs torch ${want}`);
      }
      const selected = c.selected as string[];
      const idx = selected.map((n) => names.indexOf(n));
      const grads = tf.grads((...xs: tf.Tensor[]) => {
        const all = [...maps];
        idx.forEach((j, k) => (all[j] = xs[k]));
        return loss.compute(asMap(all), samples).total;
      })(idx.map((j) => maps[j]));
      selected.forEach((n, k) => assertClose(grads[k].dataSync(), f32(c.grads_f32_base64[n]), 1e-4, `${c.name} d/d ${n}`));
      tf.dispose(grads);
      // the compiled step's path, called as SCR calls it: targets prepared from the map shapes
      // alone, then the loss from the prepared tensors; K (tag slots) is max_tags whatever the
      // batch holds, tight or padded, and the padding must not move value or gradient
      const tight = Math.max(...samples.map((s) => s.targets.length));
      for (const maxTags of [tight, 16]) {
        const fixed = await build<AttentionLoss>({ type: 'loss/scl', layers: c.layers, token_weight: c.token_weight, pixel_weight: c.pixel_weight, reduction: c.reduction, max_tags: maxTags });
        const shapes = new Map(names.map((n, i) => [n, maps[i]!.shape as [number, number, number]]));
        const prep = fixed.prepare!(samples, shapes);
        assert.deepEqual({ matched: prep.matched, unmatched: prep.unmatched }, { matched: c.matched, unmatched: c.unmatched });
        assert.equal(prep.tensors.masks!.shape[2], maxTags);
        const got = tf.tidy(() => scalar(fixed.computePrepared!(asMap(maps), prep.tensors).total));
        assert.ok(Math.abs(got - c.total) <= 1e-4 * Math.max(1, Math.abs(c.total)), `${c.name} prepared (max_tags ${maxTags}): ${got} vs torch ${c.total}`);
        const pg = tf.grads((...xs: tf.Tensor[]) => fixed.computePrepared!(new Map(selected.map((n, k) => [n, xs[k]!])), prep.tensors).total)(idx.map((j) => maps[j]!));
        selected.forEach((n, k) => assertClose(pg[k]!.dataSync(), f32(c.grads_f32_base64[n]), 1e-4, `${c.name} prepared (max_tags ${maxTags}) d/d ${n}`));
        tf.dispose([...pg, ...Object.values(prep.tensors)]);
      }
      await assertTensorCountFlat(() => {
        const g = tf.grads((...xs: tf.Tensor[]) => loss.compute(new Map(selected.map((n, k) => [n, xs[k]])), samples).total)(idx.map((j) => maps[j]));
        tf.dispose(g);
      }, { warmup: 1, steps: 2, label: `${c.name} gradient step` });
    });
  }
});
