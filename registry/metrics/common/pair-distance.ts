import { tf } from '../../../framework/api.js';
import type { MetricImage } from '../../../framework/api.js';

/**
 * The distance a network metric (LPIPS, DISTS) gives one pair of RGB images in [0, 255]: each
 * image becomes a [1, H, W, 3] tensor mapped by `toInput` into the network's input range, then
 * `distance` compares the pair. Both tensors are disposed whatever `distance` does.
 */
export function pairDistance(a: MetricImage, b: MetricImage, toInput: (x255: tf.Tensor4D) => tf.Tensor4D, distance: (x: tf.Tensor4D, y: tf.Tensor4D) => Float32Array): number {
  const toT = (im: MetricImage) => tf.tidy(() => toInput(tf.tensor4d(Float32Array.from(im.data), [1, im.height, im.width, 3])));
  const ta = toT(a);
  const tb = toT(b);
  try {
    return distance(ta, tb)[0] as number;
  } finally {
    ta.dispose();
    tb.dispose();
  }
}
