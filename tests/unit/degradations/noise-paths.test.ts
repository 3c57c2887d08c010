/**
 * The noise stage's fast paths against the plain composition they replace: Gaussian noise drawn
 * and added on two threads, Poisson noise in three passes, Poisson draws from buffered uniforms.
 * Every case must match to the bit (the stage's output and the stream afterwards).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../framework/engine/rng.js';
import { addNoise, addPoissonNoise, gaussianNoise, poissonDraws, poissonNoise, rngSampler } from '../../../registry/degradations/noise/noise.js';
import { gaussianNoisyImage, noiseHelperState } from '../../../registry/degradations/noise/gaussian-split.js';

/** An image with smooth regions and a few out-of-range values (clip and rounding both matter). */
function image(hw: number, c: number, seed: number): Float32Array {
  const r = Rng.derive(seed, 'noise-image');
  return Float32Array.from({ length: hw * c }, (_, i) => Math.fround(i % 97 === 0 ? 1.2 - 1.5 * r.random() : 0.5 + 0.45 * Math.sin(i / 900) * r.random()));
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('Gaussian noise on two threads', () => {
  for (const [label, hw] of [['odd size below the split threshold', 101 * 37], ['split, even pixel count', 256 * 200], ['split, odd pixel count', 301 * 203]] as const) {
    for (const gray of [false, true]) {
      it(`${label}, ${gray ? 'gray' : 'colour'}: the single-thread result and stream, to the bit`, () => {
        const img = image(hw, 3, hw);
        for (const [clip, rounds] of [[true, false], [true, true], [false, true]] as const) {
          const a = Rng.derive(8, 'gauss', hw, Number(gray));
          const b = Rng.derive(8, 'gauss', hw, Number(gray));
          const expected = addNoise(img, gaussianNoise(hw, 3, 17.5, gray, a.fillNormal(new Float32Array(gray ? hw : hw * 3)) as Float32Array), clip, rounds);
          const got = gaussianNoisyImage(img, hw, 3, 17.5, gray, clip, rounds, b, 2);
          assert.ok(bits(got).equals(bits(expected)), `clip ${clip} rounds ${rounds}`);
          assert.deepEqual(b.getState(), a.getState(), 'the stream continues where the single-thread fill left it');
        }
        if (hw >= 1 << 14) assert.equal(noiseHelperState(), 'running');
      });
    }
  }
  it('a helper that started at the wrong point in the stream is caught and its rows redrawn', () => {
    const hw = 256 * 200;
    const img = image(hw, 3, 5);
    const a = Rng.derive(9, 'skew');
    const expected = addNoise(img, gaussianNoise(hw, 3, 9, false, a.fillNormal(new Float32Array(hw * 3)) as Float32Array), true, false);
    for (const skew of [1, 4, -2]) {
      const b = Rng.derive(9, 'skew');
      const got = gaussianNoisyImage(img, hw, 3, 9, false, true, false, b, 2, skew);
      assert.ok(bits(got).equals(bits(expected)), `skew ${skew}`);
      assert.deepEqual(b.getState(), a.getState());
    }
  });
  it('a stream with a pending spare draw is drawn on one thread (the pairs would shift)', () => {
    const hw = 256 * 200;
    const img = image(hw, 3, 6);
    const a = Rng.derive(10, 'spare');
    const b = Rng.derive(10, 'spare');
    a.normal();
    b.normal();
    const expected = addNoise(img, gaussianNoise(hw, 3, 9, false, a.fillNormal(new Float32Array(hw * 3)) as Float32Array), true, false);
    assert.ok(bits(gaussianNoisyImage(img, hw, 3, 9, false, true, false, b, 2)).equals(bits(expected)));
    assert.deepEqual(b.getState(), a.getState());
  });
});

describe('Poisson noise in three passes', () => {
  for (const gray of [false, true]) {
    it(`${gray ? 'gray' : 'colour'}: addNoise(poissonNoise(...)) to the bit, for every clip / rounds setting`, () => {
      const hw = 120 * 90;
      const img = image(hw, 3, 11);
      for (const [clip, rounds] of [[true, false], [true, true], [false, false], [false, true]] as const) {
        for (const weights of ['torch', 'cv2'] as const) {
          const expected = addNoise(img, poissonNoise(img, hw, 3, 1.7, gray, rngSampler(Rng.derive(3, 'p')).poisson, weights), clip, rounds);
          const got = addPoissonNoise(img, hw, 3, 1.7, gray, clip, rounds, rngSampler(Rng.derive(3, 'p')).poisson, weights);
          assert.ok(bits(got).equals(bits(expected)), `clip ${clip} rounds ${rounds} ${weights}`);
          if (!gray) break; // the gray weights only matter for gray noise
        }
      }
    });
  }
  it('a flat image (one grid value: vals = 1) and a one-value image', () => {
    for (const img of [new Float32Array(3000).fill(0.25), Float32Array.of(0.6, 0.1, 0.9)]) {
      const hw = img.length / 3;
      const expected = addNoise(img, poissonNoise(img, hw, 3, 2, false, rngSampler(Rng.derive(4, 'flat')).poisson), true, true);
      assert.ok(bits(addPoissonNoise(img, hw, 3, 2, false, true, true, rngSampler(Rng.derive(4, 'flat')).poisson)).equals(bits(expected)));
    }
  });
});

describe('Poisson draws from buffered uniforms', () => {
  it('draw what Rng.poisson draws rate by rate, across many uniform blocks, and leave the stream where it would', () => {
    // rates below 10 (one uniform each) and above (PTRS pairs, with rejections) interleaved, so
    // blocks end on odd and even positions; below 256 both sides use the same log-factorial table
    const r = Rng.derive(12, 'rates');
    const lam = Float32Array.from({ length: 30000 }, (_, i) => (i % 11 === 0 ? 0 : Math.fround(i % 3 === 0 ? 9.99 * r.random() : 10 + 190 * r.random())));
    const a = Rng.derive(12, 'draws');
    const b = Rng.derive(12, 'draws');
    const got = poissonDraws(a, lam);
    const expected = Float32Array.from(lam, (l) => b.poisson(l));
    assert.ok(bits(got).equals(bits(expected)));
    assert.deepEqual(a.getState(), b.getState());
  });
});
