/**
 * Point sampling on the host, for the criterion's planning (matching costs, uncertainty, labels
 * at the sampled points): the values come from one read of the forward pass, and a few thousand
 * bilinear samples in JS cost less than the dozens of eager device ops per call that a tensor
 * version needs (RASS step: planning 400+ ms -> a few ms). Same semantics as the device
 * `pointSample` (torch grid_sample: bilinear, zeros outside, align_corners=False; points in
 * [0, 1]^2 as (x, y)).
 */

/** For each point: the 4 corner offsets (y * W + x) and bilinear weights, 0 for corners outside the map. */
export function cornerTable(points: ArrayLike<number>, count: number, H: number, W: number): { index: Int32Array; weight: Float32Array } {
  // fresh arrays are zero: a corner outside the map is simply not written (zero padding)
  const index = new Int32Array(count * 4);
  const weight = new Float32Array(count * 4);
  const fr = Math.fround;
  const halfW = W / 2;
  const halfH = H / 2;
  // the corners are written inline, with integer arithmetic (this runs for every sampled point
  // of every matched mask per step: ~1.5e5 points per Mask2Former step)
  for (let p = 0; p < count; p++) {
    // grid = 2 * point - 1, then ((grid + 1) * size - 1) / 2, in float32 steps as the device version
    const gx = fr(fr((points[p * 2] as number) * 2) - 1);
    const gy = fr(fr((points[p * 2 + 1] as number) * 2) - 1);
    const x = fr(fr(fr(gx + 1) * halfW) - 0.5);
    const y = fr(fr(fr(gy + 1) * halfH) - 0.5);
    const x0 = Math.floor(x) | 0;
    const y0 = Math.floor(y) | 0;
    const fx = fr(x - x0);
    const fy = fr(y - y0);
    const ex = fr(1 - fx);
    const ey = fr(1 - fy);
    const left = x0 >= 0 && x0 < W;
    const right = x0 + 1 >= 0 && x0 + 1 < W;
    const o = p << 2;
    if (y0 >= 0 && y0 < H) {
      const row = y0 * W + x0;
      if (left) {
        index[o] = row;
        weight[o] = ex * ey;
      }
      if (right) {
        index[o + 1] = row + 1;
        weight[o + 1] = fx * ey;
      }
    }
    if (y0 + 1 >= 0 && y0 + 1 < H) {
      const row = (y0 + 1) * W + x0;
      if (left) {
        index[o + 2] = row;
        weight[o + 2] = ex * fy;
      }
      if (right) {
        index[o + 3] = row + 1;
        weight[o + 3] = fx * fy;
      }
    }
  }
  return { index, weight };
}

/**
 * Sample channel `channel` of a channel-last map ([H, W, C] starting at `offset`) at the points
 * of a corner table: out[p] = sum of the 4 corners' values times their weights.
 */
export function sampleChannel(map: ArrayLike<number>, offset: number, C: number, channel: number, table: { index: Int32Array; weight: Float32Array }, out: Float32Array, outOffset = 0): Float32Array {
  const { index, weight } = table;
  const n = index.length >> 2;
  const fr = Math.fround;
  const base = offset + channel;
  for (let p = 0; p < n; p++) {
    // the 4 taps unrolled, summed in float32 in corner order; corners outside the map (weight 0) skipped
    const o = p << 2;
    const w0 = weight[o] as number;
    const w1 = weight[o + 1] as number;
    const w2 = weight[o + 2] as number;
    const w3 = weight[o + 3] as number;
    let acc = 0;
    if (w0 !== 0) acc = fr(acc + fr((map[base + (index[o] as number) * C] as number) * w0));
    if (w1 !== 0) acc = fr(acc + fr((map[base + (index[o + 1] as number) * C] as number) * w1));
    if (w2 !== 0) acc = fr(acc + fr((map[base + (index[o + 2] as number) * C] as number) * w2));
    if (w3 !== 0) acc = fr(acc + fr((map[base + (index[o + 3] as number) * C] as number) * w3));
    out[outOffset + p] = acc;
  }
  return out;
}

/**
 * Every channel of a channel-last map ([H, W, C] starting at `offset`) at the points of a
 * corner table, into out[c * n + p]: the same sums as `sampleChannel` per channel, but each
 * corner's C values are read together (the matcher samples all queries at the same points).
 */
export function sampleChannels(map: ArrayLike<number>, offset: number, C: number, table: { index: Int32Array; weight: Float32Array }, out: Float32Array): Float32Array {
  const { index, weight } = table;
  const n = index.length >> 2;
  const fr = Math.fround;
  const acc = new Float32Array(C);
  for (let p = 0; p < n; p++) {
    acc.fill(0);
    for (let k = 0; k < 4; k++) {
      const w = weight[(p << 2) + k] as number;
      if (w === 0) continue;
      const at = offset + (index[(p << 2) + k] as number) * C;
      for (let c = 0; c < C; c++) acc[c] = fr((acc[c] as number) + fr((map[at + c] as number) * w));
    }
    for (let c = 0; c < C; c++) out[c * n + p] = acc[c] as number;
  }
  return out;
}

/**
 * A single-channel map ([H, W] starting at `offset`) at `count` points: `cornerTable` and
 * `sampleChannel` fused, for points read once (the uncertainty candidates, the label points),
 * without building the table. Same values to the bit. The grid arithmetic is cornerTable's,
 * written out again on purpose: shared through a small helper it ran 1.5-2.5x slower here.
 */
export function samplePoints(points: ArrayLike<number>, count: number, map: ArrayLike<number>, offset: number, H: number, W: number, out: Float32Array, outOffset = 0): Float32Array {
  const fr = Math.fround;
  const halfW = W / 2;
  const halfH = H / 2;
  for (let p = 0; p < count; p++) {
    const gx = fr(fr((points[p * 2] as number) * 2) - 1);
    const gy = fr(fr((points[p * 2 + 1] as number) * 2) - 1);
    const x = fr(fr(fr(gx + 1) * halfW) - 0.5);
    const y = fr(fr(fr(gy + 1) * halfH) - 0.5);
    const x0 = Math.floor(x) | 0;
    const y0 = Math.floor(y) | 0;
    const fx = fr(x - x0);
    const fy = fr(y - y0);
    const ex = fr(1 - fx);
    const ey = fr(1 - fy);
    const left = x0 >= 0 && x0 < W;
    const right = x0 + 1 >= 0 && x0 + 1 < W;
    let acc = 0;
    // corner order and zero-weight skips as sampleChannel on cornerTable's weights
    if (y0 >= 0 && y0 < H) {
      const row = offset + y0 * W + x0;
      if (left) { const w = fr(ex * ey); if (w !== 0) acc = fr(acc + fr((map[row] as number) * w)); }
      if (right) { const w = fr(fx * ey); if (w !== 0) acc = fr(acc + fr((map[row + 1] as number) * w)); }
    }
    if (y0 + 1 >= 0 && y0 + 1 < H) {
      const row = offset + (y0 + 1) * W + x0;
      if (left) { const w = fr(ex * fy); if (w !== 0) acc = fr(acc + fr((map[row] as number) * w)); }
      if (right) { const w = fr(fx * fy); if (w !== 0) acc = fr(acc + fr((map[row + 1] as number) * w)); }
    }
    out[outOffset + p] = acc;
  }
  return out;
}
