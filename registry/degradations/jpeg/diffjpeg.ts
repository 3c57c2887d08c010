/**
 * DiffJPEG on tensors: the host computation (diffjpeg-host.ts) per image, split across two
 * threads where host work may use them. Every stage is local to a 16x16 macroblock (4:2:0
 * chroma by 2x2 means, 8x8 DCTs, nearest chroma upsampling) and padding only extends the bottom
 * and right edges, so the rows above and below a 16-row boundary code exactly as in the whole
 * image: the main thread codes the top half while the helper codes the rest, to the same bits.
 */
import * as tf from '@tensorflow/tfjs-core';
import { helperResult, helperState, hostThreads, sharedHelper } from '../../../framework/api.js';
import { diffJpegImage } from './diffjpeg-host.js';
import type { JpegJob } from './jpeg-worker.js';

export { DIFFJPEG_C_TABLE, DIFFJPEG_Y_TABLE, diffJpegImage, qualityToFactor } from './diffjpeg-host.js';

const JPEG_WORKER = new URL('./jpeg-worker.js', import.meta.url);
const LABEL = 'DiffJPEG';

/** The helper thread's state ('running', 'not started', 'unavailable: ...'). */
export function jpegHelperState(): string {
  return helperState(JPEG_WORKER);
}

/**
 * diffJpegImage with the rows from the middle 16-row boundary down coded on the helper thread
 * (`threads` >= 2 and at least two macroblock rows); the same result as coding it whole.
 */
export function diffJpegImageSplit(img: Float32Array, h: number, w: number, quality: number, differentiable = false, threads = hostThreads()): Float32Array {
  const mcuRows = Math.ceil(h / 16);
  const helper = mcuRows >= 2 ? sharedHelper<JpegJob, Float32Array>(JPEG_WORKER, LABEL, threads) : null;
  if (!helper) return diffJpegImage(img, h, w, quality, differentiable);
  const top = Math.floor(mcuRows / 2) * 16;
  const lower = img.slice(top * w * 3); // a copy, moved to the helper
  helper.post({ img: lower, h: h - top, w, quality, differentiable }, [lower.buffer]);
  const out = new Float32Array(h * w * 3);
  out.set(diffJpegImage(img.subarray(0, top * w * 3), top, w, quality, differentiable));
  const bottom = helperResult(helper, JPEG_WORKER, LABEL) ?? diffJpegImage(img.subarray(top * w * 3), h - top, w, quality, differentiable);
  out.set(bottom, top * w * 3);
  return out;
}

/**
 * DiffJPEG of a batch (N,H,W,3) float32 RGB in [0,1] at per-sample `quality` (a number or one
 * per sample). Output float32 [0,1], not rounded to 8 bits. (Plain loops: ~10 multiply-adds per
 * coefficient with separable DCTs, several times faster than block reshapes on the wasm backend.)
 */
export function diffJpeg(x: tf.Tensor4D, quality: number | readonly number[], differentiable = false): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (c !== 3) throw new RangeError(`diffJpeg expects 3 channels, got ${c}`);
  const qs = typeof quality === 'number' ? new Array<number>(n).fill(quality) : [...quality];
  if (qs.length !== n) throw new RangeError(`diffJpeg: ${qs.length} qualities for a batch of ${n}`);
  const data = x.dataSync() as Float32Array;
  const per = h * w * 3;
  const out = new Float32Array(n * per);
  for (let i = 0; i < n; i++) out.set(diffJpegImageSplit(data.subarray(i * per, (i + 1) * per), h, w, qs[i] as number, differentiable), i * per);
  return tf.tensor4d(out, [n, h, w, 3]);
}
