/**
 * Gaussian noise of one image on two threads, to the same bits as on one. A Box-Muller pair of
 * normal draws takes exactly four xoshiro outputs (unless a uniform is exactly 0, probability
 * 2^-53 per draw), so the draws for the lower rows start a known number of outputs into the
 * stream: the helper skips there (`Rng.advance`, ~1 ms per million outputs) and draws and adds
 * its rows' noise while the main thread does the upper rows. The main thread then checks that
 * its share ended exactly where the helper started; if it did not (a zero uniform was redrawn),
 * it draws the lower rows itself.
 */
import { helperResult, helperState, hostThreads, sharedHelper, type Rng } from '../../../framework/api.js';
import { addGaussianNoise } from './noise.js';
import type { GaussianJob, GaussianReply } from './noise-worker.js';

const NOISE_WORKER = new URL('./noise-worker.js', import.meta.url);
const LABEL = 'Gaussian noise';
/** Below this many pixels the hand-off costs more than the helper saves. */
const MIN_SPLIT_PIXELS = 1 << 14;

/** The helper thread's state ('running', 'not started', 'unavailable: ...'). */
export function noiseHelperState(): string {
  return helperState(NOISE_WORKER);
}

/**
 * `addGaussianNoise(img, c, sigma, gray, clip, rounds, rng.fillNormal(draws))` for one HWC image,
 * the lower half drawn and added on the helper thread where host work may use two; `rng` ends in
 * the same state as after the single-thread fill. `skew` (tests only) shifts where the helper
 * starts in the stream, to exercise the check.
 */
export function gaussianNoisyImage(
  img: Float32Array, hw: number, c: number, sigma: number, gray: boolean, clip: boolean, rounds: boolean,
  rng: Rng, threads = hostThreads(), skew = 0,
): Float32Array {
  const drawsPer = gray ? 1 : c;
  const draw = (pixels: number) => rng.fillNormal(new Float32Array(pixels * drawsPer)) as Float32Array;
  if (img.length !== hw * c) throw new RangeError(`gaussian noise: an image of ${img.length} values is not ${hw} pixels x ${c} channels`);
  // a pending spare draw would shift the pairs; fresh streams (the stage forks one) have none
  const helper = hw >= MIN_SPLIT_PIXELS && rng.getState().spare === null ? sharedHelper<GaussianJob, GaussianReply>(NOISE_WORKER, LABEL, threads) : null;
  if (!helper) return addGaussianNoise(img, c, sigma, gray, clip, rounds, draw(hw));
  // an even number of pixels above the split: the main thread's draws end on a whole pair
  const top = Math.floor(hw / 4) * 2;
  const lower = img.slice(top * c); // a copy, moved to the helper
  helper.post({ img: lower, c, sigma, gray, clip, rounds, s: rng.getState().s, skip: 2 * top * drawsPer + skew }, [lower.buffer]);
  const out = new Float32Array(img.length);
  out.set(addGaussianNoise(img.subarray(0, top * c), c, sigma, gray, clip, rounds, draw(top)));
  const reply = helperResult(helper, NOISE_WORKER, LABEL);
  const here = rng.getState();
  if (reply && here.spare === null && reply.start.every((v, k) => v === here.s[k])) {
    out.set(reply.out, top * c);
    rng.setState({ s: reply.end, spare: reply.spare });
  } else {
    out.set(addGaussianNoise(img.subarray(top * c), c, sigma, gray, clip, rounds, draw(hw - top)), top * c);
  }
  return out;
}
