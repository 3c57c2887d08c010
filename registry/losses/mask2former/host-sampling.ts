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
  const index = new Int32Array(count * 4);
  const weight = new Float32Array(count * 4);
  for (let p = 0; p < count; p++) {
    // grid = 2 * point - 1, then ((grid + 1) * size - 1) / 2, in float32 steps as the device version
    const gx = Math.fround(Math.fround((points[p * 2] as number) * 2) - 1);
    const gy = Math.fround(Math.fround((points[p * 2 + 1] as number) * 2) - 1);
    const x = Math.fround(Math.fround(Math.fround(gx + 1) * (W / 2)) - 0.5);
    const y = Math.fround(Math.fround(Math.fround(gy + 1) * (H / 2)) - 0.5);
    const x0 = Math.floor(x);
    const y0 = Math.floor(y);
    const fx = Math.fround(x - x0);
    const fy = Math.fround(y - y0);
    // the four corners inline (this runs for every sampled point of every matched mask per step)
    corner(index, weight, p * 4, x0, y0, W, H, Math.fround(Math.fround(1 - fx) * Math.fround(1 - fy)));
    corner(index, weight, p * 4 + 1, x0 + 1, y0, W, H, Math.fround(fx * Math.fround(1 - fy)));
    corner(index, weight, p * 4 + 2, x0, y0 + 1, W, H, Math.fround(Math.fround(1 - fx) * fy));
    corner(index, weight, p * 4 + 3, x0 + 1, y0 + 1, W, H, Math.fround(fx * fy));
  }
  return { index, weight };
}

/** One corner of a bilinear tap: its flat index and weight, or (0, 0) outside the map (zero padding). */
function corner(index: Int32Array, weight: Float32Array, at: number, cx: number, cy: number, W: number, H: number, w: number): void {
  const inside = cx >= 0 && cx < W && cy >= 0 && cy < H;
  index[at] = inside ? cy * W + cx : 0;
  weight[at] = inside ? w : 0;
}

/**
 * Sample channel `channel` of a channel-last map ([H, W, C] starting at `offset`) at the points
 * of a corner table: out[p] = sum of the 4 corners' values times their weights.
 */
export function sampleChannel(map: ArrayLike<number>, offset: number, C: number, channel: number, table: { index: Int32Array; weight: Float32Array }, out: Float32Array, outOffset = 0): Float32Array {
  const n = table.index.length / 4;
  for (let p = 0; p < n; p++) {
    let acc = 0;
    for (let k = 0; k < 4; k++) {
      const w = table.weight[p * 4 + k] as number;
      if (w !== 0) acc = Math.fround(acc + Math.fround((map[offset + (table.index[p * 4 + k] as number) * C + channel] as number) * w));
    }
    out[outOffset + p] = acc;
  }
  return out;
}
