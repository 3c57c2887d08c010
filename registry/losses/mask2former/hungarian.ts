/**
 * Linear sum assignment (the Hungarian matcher's core), for rectangular cost matrices.
 *
 * Shortest-augmenting-path Hungarian algorithm with row/column potentials (Kuhn-Munkres in the
 * Jonker-Volgenant formulation): each row is added by one Dijkstra-like search over reduced
 * costs, O(n^2 m) for n <= m rows. A matrix with more rows than columns is solved transposed,
 * so every column (resp. row) of the smaller side gets exactly one partner, as scipy's
 * linear_sum_assignment does. Results are returned sorted by row index, like scipy.
 */
export interface Assignment {
  rows: Int32Array;
  cols: Int32Array;
  /** Sum of the assigned costs (of the original matrix, before any maximisation sign flip). */
  total: number;
}

/** `cost` is row-major (rows x cols). Throws on NaN or -Infinity; +Infinity marks forbidden pairs. */
export function linearSumAssignment(cost: ArrayLike<number>, rows: number, cols: number, opts: { maximize?: boolean } = {}): Assignment {
  if (cost.length !== rows * cols) throw new RangeError(`linearSumAssignment: ${cost.length} costs for a ${rows}x${cols} matrix`);
  if (rows === 0 || cols === 0) return { rows: new Int32Array(0), cols: new Int32Array(0), total: 0 };
  const sign = opts.maximize ? -1 : 1;
  const transpose = rows > cols;
  const n = transpose ? cols : rows;
  const m = transpose ? rows : cols;
  const a = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const v = sign * (transpose ? cost[j * cols + i] : cost[i * cols + j]);
      if (Number.isNaN(v) || v === -Infinity) throw new RangeError('linearSumAssignment: cost matrix holds NaN or an invalid infinity');
      a[i * m + j] = v;
    }
  }
  // 1-based arrays; column 0 is the virtual start of each augmenting path
  const u = new Float64Array(n + 1);
  const v = new Float64Array(m + 1);
  const p = new Int32Array(m + 1); // p[j]: row (1-based) matched to column j, 0 = free
  const way = new Int32Array(m + 1);
  const minv = new Float64Array(m + 1);
  const used = new Uint8Array(m + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0];
      let delta = Infinity;
      let j1 = -1;
      const rowOff = (i0 - 1) * m;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = a[rowOff + j - 1] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      if (j1 < 0 || delta === Infinity) throw new RangeError('linearSumAssignment: cost matrix is infeasible (a row can only take forbidden columns)');
      for (let j = 0; j <= m; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] !== 0);
    // augment along the path back to the virtual column
    do {
      const j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  const pairs: [number, number][] = [];
  for (let j = 1; j <= m; j++) {
    if (p[j] === 0) continue;
    const r = p[j] - 1;
    const c = j - 1;
    pairs.push(transpose ? [c, r] : [r, c]);
  }
  pairs.sort((x, y) => x[0] - y[0]);
  const outR = new Int32Array(pairs.length);
  const outC = new Int32Array(pairs.length);
  let total = 0;
  pairs.forEach(([r, c], k) => {
    outR[k] = r;
    outC[k] = c;
    total += cost[r * cols + c];
  });
  return { rows: outR, cols: outC, total };
}
