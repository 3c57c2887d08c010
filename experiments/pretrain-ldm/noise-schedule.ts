/**
 * Stable Diffusion's noise schedule: "scaled_linear" betas (linear in sqrt(beta) from
 * 0.00085 to 0.012 over 1000 steps) and their cumulative alpha products, as diffusers'
 * DDPMScheduler/DDIMScheduler compute them. Reimplemented here (not imported from the
 * registry's one-step restorer) because experiments compose components only through the
 * contracts; the unit test checks both against diffusers' values.
 */
export const TRAIN_STEPS = 1000;

export function alphasCumprod(steps = TRAIN_STEPS, betaStart = 0.00085, betaEnd = 0.012): Float64Array {
  const out = new Float64Array(steps);
  const a = Math.sqrt(betaStart);
  const b = Math.sqrt(betaEnd);
  let prod = 1;
  for (let i = 0; i < steps; i++) {
    const beta = (a + ((b - a) * i) / (steps - 1)) ** 2;
    prod *= 1 - beta;
    out[i] = prod;
  }
  return out;
}

/**
 * DDIM's timesteps for `n` inference steps with diffusers' "leading" spacing and SD's
 * steps_offset = 1: [(n-1)r, ..., r, 0] + 1 with r = 1000 // n (e.g. n=4: 751, 501, 251, 1).
 */
export function ddimTimesteps(n: number, steps = TRAIN_STEPS, offset = 1): number[] {
  if (!Number.isInteger(n) || n < 1 || n > steps) throw new RangeError(`DDIM steps must be an integer in 1..${steps}, got ${n}`);
  const r = Math.floor(steps / n);
  return Array.from({ length: n }, (_, i) => (n - 1 - i) * r + offset);
}
