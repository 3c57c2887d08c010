/**
 * Tag -> class resolution shared by every tagger: a tag that names a dataset class (case-insensitive)
 * is that class; otherwise it inherits the classes of the names the synonym map gives for it,
 * transitively ("chapel" -> "church" -> "building"). Tags that reach no class have no mask and the
 * Semantic-Constraint Loss leaves them out.
 */
import { UserError, type PluginContext } from '../../../framework/api.js';
import type { SegSample } from '../../../framework/api.js';
import type { Tagger } from '../../../framework/api.js';

/**
 * A few common open-vocabulary tags and the ADE20K classes whose masks they inherit
 * (RASS: "church" inherits "building"). Users extend or replace it with `synonyms`.
 */
export const DEFAULT_SYNONYMS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  church: ['building'],
  castle: ['building'],
  temple: ['building'],
  cathedral: ['building'],
  man: ['person'],
  woman: ['person'],
  child: ['person'],
  people: ['person'],
  automobile: ['car'],
  street: ['road'],
  ocean: ['sea'],
  forest: ['tree'],
  grassland: ['grass'],
  lawn: ['grass'],
  couch: ['sofa'],
  picture: ['painting'],
  window: ['windowpane'],
  cupboard: ['cabinet'],
  trash: ['ashcan'],
});

const norm = (s: string) => s.toLowerCase().trim();

/** Classes of a tag through the synonym map (sorted indices; empty when nothing matches). */
export function resolveClasses(tag: string, classNames: readonly string[], synonyms: Readonly<Record<string, readonly string[]>>): number[] {
  const found = new Set<number>();
  const seen = new Set<string>();
  const visit = (t: string): void => {
    const key = norm(t);
    if (seen.has(key)) return; // cycles in a user map end here
    seen.add(key);
    const idx = classNames.findIndex((n) => norm(n) === key);
    if (idx >= 0) {
      found.add(idx);
      return;
    }
    for (const parent of synonyms[key] ?? []) visit(parent);
  };
  visit(tag);
  return [...found].sort((a, b) => a - b);
}

/** Binary HW mask of the union of `classes` in `label`. */
export function classMask(label: Uint8Array, classes: readonly number[]): Uint8Array {
  const member = new Uint8Array(256);
  for (const c of classes) member[c] = 1;
  const out = new Uint8Array(label.length);
  for (let i = 0; i < label.length; i++) out[i] = member[label[i]];
  return out;
}

/** Every tagger's class resolution; subclasses decide only the tags of a sample. */
export abstract class SynonymTagger implements Tagger {
  abstract readonly type: string;
  constructor(readonly synonyms: Readonly<Record<string, readonly string[]>>) {}

  abstract tagsFor(sample: SegSample, classNames: readonly string[], ignoreIndex: number): string[];

  classesForTag(tag: string, classNames: readonly string[]): number[] {
    return resolveClasses(tag, classNames, this.synonyms);
  }

  maskForTag(tag: string, label: Uint8Array, classNames: readonly string[]): Uint8Array | null {
    const classes = this.classesForTag(tag, classNames);
    return classes.length === 0 ? null : classMask(label, classes);
  }
}

/** The options every tagger takes for tag -> class resolution. */
export const synonymProperties = {
  synonyms: {
    type: 'object',
    additionalProperties: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
    default: {},
    description: 'tag -> class name(s) (or other tags) whose mask it inherits; merged over the built-in map',
  },
  use_default_synonyms: { type: 'boolean', default: true, description: 'start from the built-in map (church -> building, man -> person, ...)' },
} as const;

/** The effective synonym map: the built-in one (unless turned off) with the user's entries on top. */
export function synonymMap(user: Readonly<Record<string, string | readonly string[]>>, useDefaults: boolean, optionPath: string): Record<string, readonly string[]> {
  const out: Record<string, readonly string[]> = useDefaults ? { ...DEFAULT_SYNONYMS } : {};
  for (const [k, v] of Object.entries(user)) {
    const list = typeof v === 'string' ? [v] : [...v];
    if (list.length === 0 || list.some((x) => norm(x) === '')) throw new UserError(`${optionPath}.synonyms.${k}: give at least one non-empty class name`);
    out[norm(k)] = list;
  }
  return out;
}

/** synonymMap from a plugin's validated options. */
export function synonymsFromOptions(o: { synonyms: Record<string, string | readonly string[]>; use_default_synonyms: boolean }, ctx: PluginContext): Record<string, readonly string[]> {
  return synonymMap(o.synonyms, o.use_default_synonyms, ctx.path);
}
