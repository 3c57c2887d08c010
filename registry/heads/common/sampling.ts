import * as tf from '@tensorflow/tfjs-core';
import { customOp, nativeOpsEnabled, nativeOpWithGrad } from '../../../framework/api.js';

/**
 * Bilinear sampling with torch `grid_sample(mode='bilinear', padding_mode='zeros',
 * align_corners=False)` semantics, differentiable with respect to both the feature map and the
 * sampling coordinates (the deformable-attention offsets learn through the coordinates).
 *
 * input: [N, H, W, C] (NHWC); grid: [N, P, 2] with (x, y) in [-1, 1] (-1 = left/top edge of
 * the first pixel). Returns [N, P, C]; points outside the map read zeros.
 *
 * Everything runs on the device, with no read-back of the coordinates, so a step using it
 * compiles into one TensorFlow function (issue #21). The corner indices come from floor() of
 * the coordinates and have no gradient; tfjs's tape cannot carry an int32 index path, so this is
 * one custom op with a hand-written gradient. Only the input and the grid are kept for the
 * backward pass, which recomputes corners and weights (memory linear in the points, issue #20):
 *   d input = scatter-add over the 4 corners of dy * weight,
 *   d x = sum_c dy * ((v10 - v00)(1 - fy) + (v11 - v01) fy) * W/2, likewise d y.
 */
export function gridSample(input: tf.Tensor4D, grid: tf.Tensor3D): tf.Tensor3D {
  if (nativeOpsEnabled() && input.size > 0 && grid.size > 0) return nativeGridSample(input, grid) as tf.Tensor3D;
  return gridSampleOp(input, grid) as tf.Tensor3D;
}

/**
 * The same sampling as one TensorFlow kernel each way on the native backend
 * (native/ops/grid_sample.cc): the composite below is ~50 ops forward and ~80 backward per
 * call, a large share of a Mask2Former step's graph. Saves the input and the grid, as it does.
 */
const nativeGridSample = nativeOpWithGrad('RassGridSample');

/** Corners (x0,y0), (x1,y0), (x0,y1), (x1,y1): their flat row in [N*H*W, C], bilinear weight (0 outside the map), and fx, fy. */
function corners(grid: tf.Tensor3D, N: number, H: number, W: number): { idx: tf.Tensor1D[]; w: tf.Tensor1D[]; inside: tf.Tensor1D[]; fx: tf.Tensor1D; fy: tf.Tensor1D } {
  const P = grid.shape[1];
  const gx = tf.reshape(tf.slice(grid, [0, 0, 0], [N, P, 1]), [N * P]);
  const gy = tf.reshape(tf.slice(grid, [0, 0, 1], [N, P, 1]), [N * P]);
  // unnormalise (align_corners=False): pixel centres at i + 0.5
  const x = tf.sub(tf.mul(tf.add(gx, 1), W / 2), 0.5);
  const y = tf.sub(tf.mul(tf.add(gy, 1), H / 2), 0.5);
  const x0 = tf.floor(x);
  const y0 = tf.floor(y);
  const fx = tf.sub(x, x0) as tf.Tensor1D;
  const fy = tf.sub(y, y0) as tf.Tensor1D;
  const int = (v: number) => tf.scalar(v, 'int32'); // a bare number would make the index arithmetic float
  const base = tf.mul(tf.floorDiv(tf.range(0, N * P, 1, 'int32'), int(P)), int(H * W)); // n * H * W
  const idx: tf.Tensor1D[] = [];
  const w: tf.Tensor1D[] = [];
  const inside: tf.Tensor1D[] = [];
  for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]] as const) {
    const cx = dx ? tf.add(x0, 1) : x0;
    const cy = dy ? tf.add(y0, 1) : y0;
    const ok = tf.cast(tf.logicalAnd(tf.logicalAnd(tf.greaterEqual(cx, 0), tf.lessEqual(cx, W - 1)), tf.logicalAnd(tf.greaterEqual(cy, 0), tf.lessEqual(cy, H - 1))), 'float32') as tf.Tensor1D;
    inside.push(ok);
    const ix = tf.cast(tf.clipByValue(cx, 0, W - 1), 'int32');
    const iy = tf.cast(tf.clipByValue(cy, 0, H - 1), 'int32');
    idx.push(tf.add(base, tf.add(tf.mul(iy, int(W)), ix)) as tf.Tensor1D);
    const wx = dx ? fx : tf.sub(1, fx);
    const wy = dy ? fy : tf.sub(1, fy);
    w.push(tf.mul(tf.mul(wx, wy), ok) as tf.Tensor1D);
  }
  return { idx, w, inside, fx, fy };
}

const gridSampleOp = customOp(([input, grid], save) => {
  const [N, H, W, C] = (input as tf.Tensor4D).shape;
  const P = (grid as tf.Tensor3D).shape[1];
  save([input as tf.Tensor, grid as tf.Tensor]);
  const value = tf.tidy(() => {
    const flat = tf.reshape(input as tf.Tensor, [N * H * W, C]);
    const { idx, w } = corners(grid as tf.Tensor3D, N, H, W);
    const parts = idx.map((ix, k) => tf.mul(tf.gather(flat, ix), tf.reshape(w[k] as tf.Tensor, [N * P, 1])));
    return tf.reshape(tf.addN(parts), [N, P, C]);
  });
  return {
    value,
    gradFunc: (dy, [x, g]) =>
      tf.tidy(() => {
        const flat = tf.reshape(x as tf.Tensor, [N * H * W, C]);
        const { idx, w, inside, fx, fy } = corners(g as tf.Tensor3D, N, H, W);
        const d = tf.reshape(dy, [N * P, C]);
        const dFlat = tf.unsortedSegmentSum(tf.concat(w.map((wk) => tf.mul(d, tf.reshape(wk, [N * P, 1]))), 0), tf.concat(idx, 0), N * H * W);
        // dy . (value at each corner), zero outside the map
        const [v00, v10, v01, v11] = idx.map((ix, k) => tf.mul(tf.sum(tf.mul(d, tf.gather(flat, ix)), 1), inside[k] as tf.Tensor)) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        const dX = tf.mul(tf.add(tf.mul(tf.sub(v10, v00), tf.sub(1, fy)), tf.mul(tf.sub(v11, v01), fy)), W / 2);
        const dY = tf.mul(tf.add(tf.mul(tf.sub(v01, v00), tf.sub(1, fx)), tf.mul(tf.sub(v11, v10), fx)), H / 2);
        return [tf.reshape(dFlat, [N, H, W, C]), tf.reshape(tf.stack([dX, dY], 1), [N, P, 2])];
      }),
  };
});

/**
 * Sample maps at normalised point coordinates in [0, 1] (Mask2Former's `point_sample`:
 * grid = 2 * coords - 1). maps: [N, H, W, C]; coords: [N, P, 2] (x, y). Returns [N, P, C].
 */
export function pointSample(maps: tf.Tensor4D, coords: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => gridSample(maps, tf.sub(tf.mul(coords, 2), 1)));
}

/**
 * Multi-scale deformable attention core (the semantics of Deformable-DETR's
 * `ms_deform_attn_core_pytorch`).
 *   values: per level l, [N, H_l * W_l, heads, dHead] (row-major over H_l, W_l)
 *   shapes: per level [H_l, W_l]
 *   locations: [N, Lq, heads, L, P, 2] in [0, 1] (x, y)
 *   weights: [N, Lq, heads, L, P] (already softmaxed over L*P)
 * Returns [N, Lq, heads * dHead].
 */
export function msDeformAttnCore(values: tf.Tensor4D[], shapes: [number, number][], locations: tf.Tensor, weights: tf.Tensor): tf.Tensor3D {
  return tf.tidy(() => {
    const [N, Lq, M, L, P] = weights.shape;
    const D = values[0].shape[3];
    let acc: tf.Tensor | null = null;
    for (let l = 0; l < L; l++) {
      const [h, w] = shapes[l];
      // value: [N, HW, M, D] -> [N*M, H, W, D]
      const v = tf.reshape(tf.transpose(values[l], [0, 2, 1, 3]), [N * M, h, w, D]) as tf.Tensor4D;
      // locations of level l: [N, Lq, M, P, 2] -> [N*M, Lq*P, 2]
      const locL = tf.reshape(tf.slice(locations, [0, 0, 0, l, 0, 0], [N, Lq, M, 1, P, 2]), [N, Lq, M, P, 2]);
      const loc = tf.reshape(tf.transpose(locL, [0, 2, 1, 3, 4]), [N * M, Lq * P, 2]);
      const sampled = gridSample(v, tf.sub(tf.mul(loc, 2), 1)); // [N*M, Lq*P, D]
      const wL = tf.reshape(tf.slice(weights, [0, 0, 0, l, 0], [N, Lq, M, 1, P]), [N, Lq, M, P]);
      const wl = tf.reshape(tf.transpose(wL, [0, 2, 1, 3]), [N * M, Lq * P, 1]);
      const contrib = tf.sum(tf.reshape(tf.mul(sampled, wl), [N * M, Lq, P, D]), 2); // [N*M, Lq, D]
      acc = acc ? tf.add(acc, contrib) : contrib;
    }
    // [N*M, Lq, D] -> [N, Lq, M*D]
    return tf.reshape(tf.transpose(tf.reshape(acc as tf.Tensor, [N, M, Lq, D]), [0, 2, 1, 3]), [N, Lq, M * D]);
  });
}
