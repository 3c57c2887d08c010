/** Mirrors hash_uniform in scripts/fixtures/metrics/make_lpips.py: u32 hash of (tensor index, element index) -> uniform [-bound, bound), float32. */
export function hashUniform(nameIndex: number, n: number, bound: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // (i * 2654435761 + nameIndex * 40503 + 12345) mod 2^32, exactly
    let x = (Math.imul(i, 2654435761 | 0) + Math.imul(nameIndex, 40503) + 12345) >>> 0;
    for (let r = 0; r < 2; r++) {
      x = (x ^ (x >>> 16)) >>> 0;
      x = Math.imul(x, 0x45d9f3b) >>> 0;
    }
    x = (x ^ (x >>> 16)) >>> 0;
    out[i] = (x / 4294967296 - 0.5) * 2 * bound;
  }
  return out;
}

/** Backbone tensors with the hash init (bound 1/sqrt(fan_in); a bias uses its weight's fan-in), index = sorted-name position. */
export function hashInitTensors(names: readonly string[], shapes: Record<string, number[]>, lin = false) {
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  names.forEach((k, idx) => {
    const shape = shapes[k];
    const n = shape.reduce((a, b) => a * b, 1);
    const wshape = k.endsWith('bias') ? shapes[k.slice(0, -4) + 'weight'] : shape;
    const fanIn = wshape.slice(1).reduce((a, b) => a * b, 1);
    let u = hashUniform(idx, n, 1 / Math.sqrt(fanIn));
    if (lin && k.startsWith('lin')) u = hashUniform(idx, n, 1).map(Math.abs);
    tensors[k] = { dtype: 'F32', shape, data: u };
  });
  return tensors;
}

export const f32FromBase64 = (b64: string) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);
