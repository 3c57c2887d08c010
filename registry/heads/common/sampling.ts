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
  const [N, H, W, C] = input.shape;
  const P = grid.shape[1];
  // Corner indices and validity are computed from the coordinate values on the CPU: they are
  // piecewise constant in the coordinates (zero gradient), and keeping them off the gradient
  // tape avoids tfjs' refusal of int32 gradients for gather indices.
  const g = grid.dataSync();
  const fx = new Float32Array(N * P);
  const fy = new Float32Array(N * P);
  const idx = [0, 1, 2, 3].map(() => new Int32Array(N * P));
  const valid = [0, 1, 2, 3].map(() => new Float32Array(N * P));
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < P; p++) {
      const i = n * P + p;
      const x = ((g[i * 2] + 1) * W) / 2 - 0.5;
      const y = ((g[i * 2 + 1] + 1) * H) / 2 - 0.5;
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      fx[i] = x0;
      fy[i] = y0;
      [[x0, y0], [x0 + 1, y0], [x0, y0 + 1], [x0 + 1, y0 + 1]].forEach(([cx, cy], k) => {
        const ok = cx >= 0 && cx < W && cy >= 0 && cy < H;
        valid[k][i] = ok ? 1 : 0;
        idx[k][i] = ok ? n * H * W + cy * W + cx : n * H * W;
      });
    }
  }
  return tf.tidy(() => {
    const flat = tf.reshape(input, [N * H * W, C]);
    const gx = tf.reshape(tf.slice(grid, [0, 0, 0], [N, P, 1]), [N * P]);
    const gy = tf.reshape(tf.slice(grid, [0, 0, 1], [N, P, 1]), [N * P]);
    // unnormalise (align_corners=False): pixel centres at i + 0.5; weights stay differentiable in the grid
    const wx1 = tf.sub(tf.sub(tf.mul(tf.add(gx, 1), W / 2), 0.5), tf.tensor1d(fx));
    const wy1 = tf.sub(tf.sub(tf.mul(tf.add(gy, 1), H / 2), 0.5), tf.tensor1d(fy));
    const wx0 = tf.sub(1, wx1);
    const wy0 = tf.sub(1, wy1);
    const ws = [tf.mul(wx0, wy0), tf.mul(wx1, wy0), tf.mul(wx0, wy1), tf.mul(wx1, wy1)];
    let out: tf.Tensor | null = null;
    for (let k = 0; k < 4; k++) {
      const w = tf.reshape(tf.mul(ws[k], tf.tensor1d(valid[k])), [N * P, 1]);
      const v = tf.mul(tf.gather(flat, tf.tensor1d(idx[k], 'int32')), w);
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
