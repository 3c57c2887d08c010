/**
 * The run's non-finite metric policy (`fail_on_nan`). A loss that turns NaN never comes back,
 * so training on is wasted compute and, in a sweep, a misleading "finished" trial. The guard
 * runs after the values are journaled (the NaN itself stays on record) and throws, so the
 * experiment stops at the step it happened and the run ends FAILED naming the metric and step.
 */
export type NanPolicy = boolean | readonly string[];

export class NonFiniteMetricError extends Error {
  constructor(
    readonly metric: string,
    readonly value: number,
    readonly step: number,
  ) {
    super(`metric "${metric}" became ${value} at step ${step} (fail_on_nan; set fail_on_nan: false in the config to keep training)`);
    this.name = 'NonFiniteMetricError';
  }
}

/** `*` matches any run of characters; everything else is literal. */
function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*')}$`);
}

/** A checker for one run: throws NonFiniteMetricError for the first guarded non-finite value. */
export function nanGuard(policy: NanPolicy | undefined): (step: number, values: Record<string, number>) => void {
  const p = policy ?? ['*loss*'];
  if (p === false || (Array.isArray(p) && p.length === 0)) return () => {};
  const patterns = p === true ? [/^/] : (p as readonly string[]).map(globToRegExp);
  const guarded = new Map<string, boolean>();
  const isGuarded = (name: string) => {
    let g = guarded.get(name);
    if (g === undefined) guarded.set(name, (g = patterns.some((re) => re.test(name))));
    return g;
  };
  return (step, values) => {
    for (const [k, v] of Object.entries(values)) {
      if (!Number.isFinite(v) && isGuarded(k)) throw new NonFiniteMetricError(k, v, step);
    }
  };
}
