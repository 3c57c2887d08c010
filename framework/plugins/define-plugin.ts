import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import type { PluginKind } from './kinds.js';
import type { PluginContext } from './context.js';

/**
 * A plugin: a plain object with a JSON Schema for its options and a `create` that builds
 * the component. Options are validated (and defaults applied) before `create` runs, so
 * `create` receives exactly the typed options its schema describes.
 */
export interface Plugin<K extends PluginKind = PluginKind, O = any, T = unknown> {
  readonly kind: K;
  readonly name: string;
  readonly version: string;
  /** One line shown by `rass plugins`. */
  readonly description: string;
  /** Longer Markdown text shown by `rass plugins show KIND/NAME`. */
  readonly docs?: string;
  /** JSON Schema (draft-07 keywords, ajv) of the options object, without `type`. */
  readonly schema: JSONSchema;
  create(options: O, ctx: PluginContext): T | Promise<T>;
}

export type AnyPlugin = Plugin<PluginKind, any, any>;

/** The type a plugin builds. */
export type PluginOutput<P> = P extends Plugin<PluginKind, any, infer T> ? T : never;

/**
 * The options type of a schema: inferred from a literal schema (`as const`); a widened
 * schema type (e.g. `Record<string, unknown>`, for schemas too deep for inference) gives
 * loosely typed options instead of a compile error.
 */
export type OptionsOf<S> = S extends Record<string, unknown> ? (string extends keyof S ? Record<string, any> : FromSchema<S>) : S extends JSONSchema ? FromSchema<S> : never;

export interface PluginDefinition<K extends PluginKind, S extends JSONSchema, T> {
  kind: K;
  name: string;
  version?: string;
  description: string;
  docs?: string;
  schema: S;
  create(options: NoInfer<OptionsOf<S>>, ctx: PluginContext): T | Promise<T>;
}

/**
 * Declare a plugin. The options type of `create` follows from the schema literal (pass it
 * `as const`), e.g.
 *
 *   export default definePlugin({
 *     kind: 'loss', name: 'l1', description: 'mean absolute error',
 *     schema: { type: 'object', properties: { weight: { type: 'number', default: 1 } } } as const,
 *     create: (opts) => new L1Loss(opts.weight),
 *   });
 */
export function definePlugin<K extends PluginKind, const S extends JSONSchema, T>(
  def: PluginDefinition<K, S, T>,
): Plugin<K, OptionsOf<S>, T> {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(def.name)) {
    throw new Error(`plugin name "${def.name}" must be lower-case letters, digits, '.', '_' or '-'`);
  }
  return Object.freeze({ version: '0.0.0', ...def }) as never;
}
