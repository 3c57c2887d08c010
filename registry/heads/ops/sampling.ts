import * as tf from '@tensorflow/tfjs-core';

/**
 * Bilinear sampling with torch `grid_sample(mode='bilinear', padding_mode='zeros',
 * align_corners=False)` semantics, written with gather so it is differentiable with respect to
 * both the feature map and the sampling coordinates (the deformable-attention offsets learn
 * through the coordinates).
 *
 * input: [N, H, W, C] (NHWC); grid: [N, P, 2] with (x, y) in [-1, 1] (-1 = left/top edge of
 * the first pixel). Returns [N, P, C]; points outside the map read zeros.
 */
export function gridSample(input: tf.Tensor4D, grid: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const [N, H, W, C] = input.shape;
    const P = grid.shape[1];
    const flat = tf.reshape(input, [N * H * W, C]);
    const gx = tf.reshape(tf.slice(grid, [0, 0, 0], [N, P, 1]), [N, P]);
    const gy = tf.reshape(tf.slice(grid, [0, 0, 1], [N, P, 1]), [N, P]);
    // unnormalise (align_corners=False): pixel centres at i + 0.5
    const x = tf.sub(tf.mul(tf.add(gx, 1), W / 2), 0.5);
    const y = tf.sub(tf.mul(tf.add(gy, 1), H / 2), 0.5);
    const x0 = tf.floor(x);
    const y0 = tf.floor(y);
    const wx1 = tf.sub(x, x0);
    const wy1 = tf.sub(y, y0);
    const wx0 = tf.sub(1, wx1);
    const wy0 = tf.sub(1, wy1);
    const x1 = tf.add(x0, 1);
    const y1 = tf.add(y0, 1);
    const base = tf.reshape(tf.mul(tf.range(0, N, 1, 'int32'), tf.scalar(H * W, 'int32')), [N, 1]);
    const wInt = tf.scalar(W, 'int32');
    let out: tf.Tensor | null = null;
    const corners: [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor][] = [
      [x0, y0, wx0, wy0],
      [x1, y0, wx1, wy0],
      [x0, y1, wx0, wy1],
      [x1, y1, wx1, wy1],
    ];
    for (const [cx, cy, wx, wy] of corners) {
      const valid = tf.logicalAnd(tf.logicalAnd(tf.greaterEqual(cx, 0), tf.lessEqual(cx, W - 1)), tf.logicalAnd(tf.greaterEqual(cy, 0), tf.lessEqual(cy, H - 1)));
      const xi = tf.cast(tf.clipByValue(cx, 0, W - 1), 'int32');
      const yi = tf.cast(tf.clipByValue(cy, 0, H - 1), 'int32');
      const idx = tf.reshape(tf.add(base, tf.add(tf.mul(yi, wInt), xi)), [N * P]);
      const w = tf.reshape(tf.mul(tf.mul(wx, wy), tf.cast(valid, 'float32')), [N * P, 1]);
      const v = tf.mul(tf.gather(flat, idx), w);
      out = out ? tf.add(out, v) : v;
    }
    return tf.reshape(out as tf.Tensor, [N, P, C]);
  });
}

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
