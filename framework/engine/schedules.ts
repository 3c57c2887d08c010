/**
 * Learning-rate schedules as pure functions of the step (0-based: the lr used by step t),
 * multiplicative like torch's ChainedScheduler: lr(t) = base * warmup(t) * main(t).
 *   constant: 1;  poly: (1 - min(t, T)/T)^power (floored at min_lr/base);
 *   cosine: eta_min + (base - eta_min)(1 + cos(pi min(t,T)/T))/2;
 *   linear warmup: ratio + (1 - ratio) min(t, W)/W.
 */
export interface ScheduleSpec {
  type: 'constant' | 'poly' | 'cosine';
  /** steps of the main schedule (poly / cosine) */
  max_steps?: number;
  power?: number;
  min_lr?: number;
  warmup?: { iters: number; ratio: number };
}

export function warmupFactor(t: number, w?: { iters: number; ratio: number }): number {
  if (!w || w.iters <= 0) return 1;
  return w.ratio + (1 - w.ratio) * (Math.min(t, w.iters) / w.iters);
}

export function lrAt(t: number, baseLr: number, s: ScheduleSpec): number {
  const T = s.max_steps ?? 1;
  let main: number;
  switch (s.type) {
    case 'constant':
      main = baseLr;
      break;
    case 'poly':
      main = Math.max(baseLr * (1 - Math.min(t, T) / T) ** (s.power ?? 1), s.min_lr ?? 0);
      break;
    case 'cosine': {
      const eta = s.min_lr ?? 0;
      main = eta + ((baseLr - eta) * (1 + Math.cos((Math.PI * Math.min(t, T)) / T))) / 2;
      break;
    }
  }
  return main * warmupFactor(t, s.warmup);
}
