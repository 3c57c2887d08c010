/** The headline line every benchmark ends with (ratio = our speed / peer's; above 1 we are faster). */
export function benchLine(id: string, value: number, unit: string, peerName: string, peerValue: number, ratio: number): string {
  const f = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : String(x));
  return `BENCH ${id} ${f(value)} ${unit} peer=${peerName} ${f(peerValue)} ratio=${f(ratio)}`;
}
