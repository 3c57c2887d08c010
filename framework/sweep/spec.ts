import { createHash } from 'node:crypto';
import { Ajv, type ValidateFunction } from 'ajv';
import { UserError } from '../errors.js';
import { Rng } from '../engine/rng.js';

/**
 * Sweep specs: how one experiment config expands into an ablation's trials.
 *
 *   sweep:
 *     name: seg-lora-rank
 *     grid:     { experiment.seg_lora.rank: [2, 4, 8] }           # cartesian product
 *     zip:      [ { a.lr: [1e-4, 2e-4], a.warmup: [100, 200] } ]  # linked axes advance together
 *     variants: { prior: { none: { a.scr: ~ }, scr: { a.scr.path: x } } }  # named sub-configs
 *     random:   { count: 8, seed: 0, params: { a.lr: { loguniform: [1e-5, 1e-3] } } }
 *     repeats:  3            # or seeds: [0, 1, 2] -> the top-level `seed`
 *     metric:   { name: miou, goal: max }
 *     executor: { type: executor/slurm, partition: gpu, gpus: 1, cpus: 8, mem: 32G, time: '04:00:00' }
 *     # or { type: executor/local, max_trials_per_worker: 1, memory_mb: 4096 } (the default: local,
 *     # workers reused), or any executor plugin; `type: local` / `type: slurm` mean the same
 *
 * Every axis (each grid key, each zip group, each variants group, the random block, the
 * repeats) multiplies the trial count. A trial is an ordered list of overrides (config path
 * -> value) plus labels for reports; its id is a hash of the overrides, so it is stable
 * across re-runs and re-orderings of the spec, which is what lets a re-run skip finished trials.
 */
export interface SweepSpec {
  name?: string;
  grid?: Record<string, unknown[]>;
  zip?: Record<string, unknown[]>[];
  variants?: Record<string, Record<string, Record<string, unknown>>>;
  random?: { count: number; seed?: number; params: Record<string, RandomDist> };
  repeats?: number;
  seeds?: number[];
  metric?: { name: string; goal?: 'max' | 'min' };
  /** where trials run: an executor plugin node (default executor/local); options are checked by the plugin's schema */
  executor?: { type: string; [option: string]: unknown };
}

export type RandomDist =
  | { choice: unknown[] }
  | { uniform: [number, number] }
  | { loguniform: [number, number] }
  | { randint: [number, number] };

export interface Trial {
  /** Stable id: `t` + 10 hex of sha256 over the canonical overrides. */
  id: string;
  /** 0-based position in the expansion order (for display only; ids are what identify trials). */
  index: number;
  /** Config path -> value, in application order. */
  overrides: [string, unknown][];
  /** Axis name -> value label shown in tables and reports (e.g. `prior: scr`, `experiment.rank: 4`). */
  labels: Record<string, string>;
}

const distSchema = {
  oneOf: [
    { type: 'object', required: ['choice'], additionalProperties: false, properties: { choice: { type: 'array', minItems: 1 } } },
    { type: 'object', required: ['uniform'], additionalProperties: false, properties: { uniform: { type: 'array', items: { type: 'number' }, minItems: 2, maxItems: 2 } } },
    { type: 'object', required: ['loguniform'], additionalProperties: false, properties: { loguniform: { type: 'array', items: { type: 'number', exclusiveMinimum: 0 }, minItems: 2, maxItems: 2 } } },
    { type: 'object', required: ['randint'], additionalProperties: false, properties: { randint: { type: 'array', items: { type: 'integer' }, minItems: 2, maxItems: 2 } } },
  ],
};

export const sweepSpecSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9._-]+$' },
    grid: { type: 'object', additionalProperties: { type: 'array', minItems: 1 } },
    zip: { type: 'array', items: { type: 'object', minProperties: 1, additionalProperties: { type: 'array', minItems: 1 } } },
    variants: { type: 'object', additionalProperties: { type: 'object', minProperties: 1, additionalProperties: { type: 'object' } } },
    random: {
      type: 'object',
      required: ['count', 'params'],
      additionalProperties: false,
      properties: { count: { type: 'integer', minimum: 1 }, seed: { type: 'integer', minimum: 0 }, params: { type: 'object', minProperties: 1, additionalProperties: distSchema } },
    },
    repeats: { type: 'integer', minimum: 1 },
    seeds: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1 },
    metric: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string' }, goal: { enum: ['max', 'min'] } } },
    executor: { type: 'object', required: ['type'], properties: { type: { type: 'string', pattern: '^(executor/)?[a-z0-9][a-z0-9._-]*$' } } },
  },
} as const;

// compiled on first use: trial workers import this module but never parse a spec
let validateSpec: ValidateFunction | undefined;

/** Validate a `sweep:` block; `where(path)` names the origin of a key for error messages. */
export function parseSweepSpec(raw: unknown, where: (path: string) => string = (p) => `sweep${p}`): SweepSpec {
  validateSpec ??= new Ajv({ allErrors: true, strict: false }).compile(sweepSpecSchema);
  if (!validateSpec(raw)) {
    const lines = (validateSpec.errors ?? []).map((e) => {
      const path = e.instancePath.replace(/\//g, '.');
      return `${where(path)}: ${e.message ?? 'invalid'}${e.params && 'additionalProperty' in e.params ? ` ("${String(e.params.additionalProperty)}")` : ''}`;
    });
    throw new UserError(`invalid sweep spec:\n  ${[...new Set(lines)].join('\n  ')}`);
  }
  const spec = raw as SweepSpec;
  if (spec.repeats !== undefined && spec.seeds !== undefined) throw new UserError(`${where('')}: give either "repeats" or "seeds", not both`);
  for (const [i, group] of (spec.zip ?? []).entries()) {
    const lens = Object.values(group).map((v) => v.length);
    if (new Set(lens).size > 1) {
      throw new UserError(`${where(`.zip[${i}]`)}: linked axes must have equal lengths, got ${Object.entries(group).map(([k, v]) => `${k}: ${v.length}`).join(', ')}`);
    }
  }
  const paths = new Map<string, string>();
  // `experiment` and `experiment.lr` on two axes overlap as much as the same path twice: the
  // whole-node value would replace (or be patched by) the other, depending on axis order.
  const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer + '.');
  const claim = (path: string, axis: string) => {
    for (const [p, other] of paths) {
      if (other === axis || !(within(path, p) || within(p, path))) continue;
      if (p === path) throw new UserError(`${where('')}: config path "${path}" is swept by two axes (${other} and ${axis}); a trial could not tell which value wins`);
      throw new UserError(`${where('')}: axes ${other} ("${p}") and ${axis} ("${path}") overlap: one sets a config node the other sets inside; a trial could not tell which value wins`);
    }
    if (!paths.has(path)) paths.set(path, axis);
  };
  for (const k of Object.keys(spec.grid ?? {})) claim(k, `grid.${k}`);
  (spec.zip ?? []).forEach((g, i) => Object.keys(g).forEach((k) => claim(k, `zip[${i}]`)));
  for (const [group, vs] of Object.entries(spec.variants ?? {})) for (const v of Object.values(vs)) Object.keys(v).forEach((k) => claim(k, `variants.${group}`));
  for (const k of Object.keys(spec.random?.params ?? {})) claim(k, 'random');
  if (spec.repeats !== undefined || spec.seeds !== undefined) claim('seed', 'repeats');
  return spec;
}

/** One axis: a list of choices, each a set of overrides plus display labels. */
type Axis = { overrides: [string, unknown][]; labels: Record<string, string> }[];

function label(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function sampleDist(d: RandomDist, rng: Rng): unknown {
  if ('choice' in d) return rng.choice(d.choice);
  if ('uniform' in d) return rng.uniform(d.uniform[0], d.uniform[1]);
  if ('loguniform' in d) return Math.exp(rng.uniform(Math.log(d.loguniform[0]), Math.log(d.loguniform[1])));
  return rng.int(d.randint[0], d.randint[1]);
}

/** Expand a spec into trials (grid axes first, in spec order; the last axis varies fastest). */
export function expandSweep(spec: SweepSpec, baseSeed = 0): Trial[] {
  const axes: Axis[] = [];
  for (const [path, values] of Object.entries(spec.grid ?? {})) {
    axes.push(values.map((v) => ({ overrides: [[path, v]], labels: { [path]: label(v) } })));
  }
  for (const group of spec.zip ?? []) {
    const keys = Object.keys(group);
    const n = group[keys[0]].length;
    axes.push(Array.from({ length: n }, (_, i) => ({ overrides: keys.map((k) => [k, group[k][i]] as [string, unknown]), labels: Object.fromEntries(keys.map((k) => [k, label(group[k][i])])) })));
  }
  for (const [group, variants] of Object.entries(spec.variants ?? {})) {
    axes.push(Object.entries(variants).map(([name, sets]) => ({ overrides: Object.entries(sets), labels: { [group]: name } })));
  }
  if (spec.random) {
    const rng = Rng.derive(spec.random.seed ?? 0, 'sweep-random');
    const params = Object.entries(spec.random.params);
    axes.push(
      Array.from({ length: spec.random.count }, () => {
        const o = params.map(([k, d]) => [k, sampleDist(d, rng)] as [string, unknown]);
        return { overrides: o, labels: Object.fromEntries(o.map(([k, v]) => [k, typeof v === 'number' ? Number(v.toPrecision(4)).toString() : label(v)])) };
      }),
    );
  }
  const seeds = spec.seeds ?? (spec.repeats !== undefined ? Array.from({ length: spec.repeats }, (_, r) => baseSeed + r) : undefined);
  if (seeds) axes.push(seeds.map((s) => ({ overrides: [['seed', s]], labels: { seed: String(s) } })));

  let combos: Axis = [{ overrides: [], labels: {} }];
  for (const axis of axes) {
    const next: Axis = [];
    for (const c of combos) for (const choice of axis) next.push({ overrides: [...c.overrides, ...choice.overrides], labels: { ...c.labels, ...choice.labels } });
    combos = next;
  }
  const trials = combos.map((c, index) => ({ id: trialId(c.overrides), index, overrides: c.overrides, labels: c.labels }));
  const seen = new Map<string, number>();
  for (const t of trials) {
    const prev = seen.get(t.id);
    if (prev !== undefined) throw new UserError(`sweep trials ${prev} and ${t.index} have identical overrides (${formatOverrides(t.overrides).join(' ')}): remove the duplicate values`);
    seen.set(t.id, t.index);
  }
  return trials;
}

/** Canonical JSON: object keys sorted, so equal values hash equally. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v ?? null);
}

export function trialId(overrides: readonly [string, unknown][]): string {
  const sorted = [...overrides].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return 't' + createHash('sha256').update(canonical(sorted)).digest('hex').slice(0, 10);
}

/** Overrides as `--set` strings (values as JSON, which YAML parses back to the same value). */
export function formatOverrides(overrides: readonly [string, unknown][]): string[] {
  return overrides.map(([k, v]) => `${k}=${v === undefined ? '~' : JSON.stringify(v)}`);
}
