/**
 * numpy / torch `round`: halves go to the even neighbour. Math.round takes halves up, so a tie
 * is exactly where `r - x` is 0.5 (exact in float64 for |x| < 2^52); a `x % 1` test cost twice
 * as much in the per-pixel loops that call this (noise, JPEG, metrics).
 */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
