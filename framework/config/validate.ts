import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { PluginRegistry } from '../plugins/registry.js';
import type { AnyPlugin } from '../plugins/define-plugin.js';
import { isPluginKind, PLUGIN_KINDS } from '../plugins/kinds.js';
import { didYouMean, isUserError } from '../errors.js';
import type { OriginMap } from './origins.js';
import type { CreatedKey } from './overrides.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import { formatPath, isPlainObject, type ConfigPath } from './paths.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/**
 * Schema validation of a resolved config: the root against the run schema, then every
 * component node (`{ type: kind/name, ...options }`, also inside lists and inside other
 * components' options) against its plugin's schema. ajv runs with allErrors (every problem
 * is reported, not the first), useDefaults (defaults are written into the config, so the
 * saved config is complete) and no type coercion ("1" is not silently 1). Unknown keys are
 * errors with a did-you-mean, even when a plugin schema forgot additionalProperties: false.
 */
const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: false, strict: false, allowUnionTypes: true });
addFormats(ajv);
const compiled = new WeakMap<object, ValidateFunction>();

function strictSchema(schema: Record<string, unknown>): Record<string, unknown> {
  // Close the top-level object so a typo is an error. `type` (the node's own key) and `id`
  // (pipeline elements are patched by id) are always allowed.
  const props = (schema.properties ?? {}) as Record<string, unknown>;
  const closed = schema.additionalProperties === undefined && !schema.patternProperties && !schema.allOf && !schema.anyOf && !schema.oneOf && !schema.$ref;
  return {
    ...schema,
    type: schema.type ?? 'object',
    properties: { ...props, type: { type: 'string' }, id: props.id ?? {} },
    ...(closed ? { additionalProperties: false } : {}),
  };
}

const compiledRoot = new WeakMap<object, ValidateFunction>();

/** Plugin schemas are closed at the top level (strictSchema); a root schema is taken as written. */
function validatorFor(schema: object, root = false): ValidateFunction {
  const cache = root ? compiledRoot : compiled;
  let v = cache.get(schema);
  if (!v) {
    v = ajv.compile(root ? schema : strictSchema(schema as Record<string, unknown>));
    cache.set(schema, v);
  }
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`;
  return `${typeof v} ${String(v)}`;
}

function issuesFromAjv(errors: ErrorObject[], node: unknown, nodePath: ConfigPath, origins: OriginMap, schemaProps: (p: ConfigPath) => string[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const rel: (string | number)[] = e.instancePath
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
      .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    let path: ConfigPath = [...nodePath, ...rel];
    let message: string;
    const actual = rel.reduce<unknown>((cur, seg) => (cur as Record<string | number, unknown> | undefined)?.[seg], node);
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String((e.params as { additionalProperty: string }).additionalProperty);
        path = [...path, key];
        message = `unknown key "${key}"${didYouMean(key, schemaProps(rel))}`;
        const known = schemaProps(rel).filter((k) => k !== 'type' && k !== 'id');
        if (!didYouMean(key, known) && known.length) message += `; allowed keys: ${known.join(', ')}`;
        break;
      }
      case 'required':
        message = `missing required key "${(e.params as { missingProperty: string }).missingProperty}"`;
        break;
      case 'type':
        message = `expected ${(e.params as { type: string }).type}, got ${describe(actual)}`;
        break;
      case 'enum':
        message = `expected one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((x) => JSON.stringify(x)).join(', ')}, got ${describe(actual)}`;
        break;
      case 'anyOf':
      case 'oneOf':
        message = `does not match any allowed form (got ${describe(actual)})`;
        break;
      default:
        message = `${e.message ?? 'invalid'}${['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'pattern', 'const'].includes(e.keyword) ? `, got ${describe(actual)}` : ''}`;
    }
    const key = `${formatPath(path)}|${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ origin: origins.nearest(path), path: formatPath(path), message });
  }
  // anyOf/oneOf also report every branch's error: keep them only when nothing more specific exists
  return out.length > 1 ? out.filter((i) => !/does not match any allowed form/.test(i.message) || out.every((j) => j.path !== i.path || j === i)) : out;
}

function propsAt(schema: unknown, rel: ConfigPath): string[] {
  let s = schema as Record<string, any> | undefined;
  for (const seg of rel) {
    if (!s) return [];
    s = typeof seg === 'number' ? s.items : s.properties?.[seg];
  }
  return Object.keys((s?.properties ?? {}) as object);
}

export function isComponentLike(v: unknown): v is { type: string } {
  return isPlainObject(v) && typeof v.type === 'string' && /^[a-z]+\/[^/\s]+$/.test(v.type) && isPluginKind(v.type.split('/')[0]);
}

/**
 * Validate `value` in place (defaults applied); throws ConfigError with every issue.
 * `vars` subtrees are skipped (they hold data that is only validated where it is referenced)
 * unless `opts.includeVars` asks for them, as a fragment that fills `vars` does.
 */
export function validateTree(value: Record<string, unknown>, origins: OriginMap, registry: PluginRegistry, rootSchema: object, opts: { includeVars?: boolean; created?: readonly CreatedKey[] } = {}): void {
  const issues: ConfigIssue[] = [];
  const rootV = validatorFor(rootSchema, true);
  if (!rootV(value)) issues.push(...issuesFromAjv(rootV.errors ?? [], value, [], origins, (rel) => propsAt(rootSchema, rel)));

  const walk = (v: unknown, path: ConfigPath): void => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, [...path, i]));
      return;
    }
    if (!isPlainObject(v)) return;
    if (typeof v.type === 'string' && /^[a-z]+\//.test(v.type)) {
      const kind = v.type.split('/')[0];
      if (isPluginKind(kind)) {
        let plugin: AnyPlugin | undefined;
        try {
          plugin = registry.resolveType(v.type);
        } catch (e) {
          if (!isUserError(e)) throw e;
          issues.push({ origin: origins.nearest([...path, 'type']), path: formatPath([...path, 'type']), message: (e as Error).message });
        }
        if (plugin) {
          const validate = validatorFor(plugin.schema as object);
          if (!validate(v)) issues.push(...issuesFromAjv(validate.errors ?? [], v, path, origins, (rel) => propsAt(strictSchema(plugin.schema as Record<string, unknown>), rel)));
        }
      } else if (didYouMean(kind, PLUGIN_KINDS)) {
        // only a near-miss of a kind is reported: other "a/b" strings (MIME types...) are data
        issues.push({ origin: origins.nearest([...path, 'type']), path: formatPath([...path, 'type']), message: `"${v.type}": unknown plugin kind "${kind}"${didYouMean(kind, PLUGIN_KINDS)}` });
      }
    }
    for (const [k, x] of Object.entries(v)) if (k !== 'vars' || opts.includeVars) walk(x, [...path, k]);
  };
  walk(value, []);
  for (const c of opts.created ?? []) {
    // a later set may have deleted it again (a sweep's trials drop the `sweep:` block)
    if (c.path.reduce<unknown>((cur, seg) => (cur as Record<string | number, unknown> | undefined)?.[seg], value) === undefined) continue;
    // every key from the first one no file defines down to the one set must be declared
    for (let k = c.from; k < c.path.length; k++) {
      const p = c.path.slice(0, k + 1);
      if (typeof p[k] !== 'string') continue;
      if (issues.some((i) => i.path.startsWith(formatPath(p)))) break; // already reported (an unknown option)
      const problem = undeclaredKey(value, p, registry, rootSchema);
      if (problem) {
        issues.push({ origin: { set: c.set }, path: formatPath(p), message: problem.replace(/=\.\.\.$/, c.path.length > p.length ? `${formatPath(c.path).slice(formatPath(p).length)}=...` : '=...') });
        break;
      }
    }
  }
  if (issues.length) throw new ConfigError(issues);
}

/**
 * A key a `--set` added that no file defines is accepted where a schema declares it (the run
 * schema at the top level, the plugin's schema inside a component node). Elsewhere (free-form
 * maps such as `vars`) it must be asked for with `+`, as in Hydra, so a typo is an error
 * rather than a new key nobody reads. Where the schema's shape cannot be followed (a union,
 * a reference) the key is let through for ajv to judge.
 */
function undeclaredKey(value: Record<string, unknown>, path: ConfigPath, registry: PluginRegistry, rootSchema: object): string | undefined {
  let schema: Record<string, any> | undefined = rootSchema as Record<string, any>;
  let node: unknown = value;
  let rel: ConfigPath = [];
  for (let d = 0; d < path.length - 1; d++) {
    node = (node as Record<string | number, unknown> | undefined)?.[path[d]];
    rel = [...rel, path[d]];
    if (isComponentLike(node)) {
      try {
        schema = strictSchema(registry.resolveType(node.type).schema as Record<string, unknown>);
        rel = [];
      } catch {
        return undefined; // an unknown type is reported on its own
      }
    }
  }
  for (const seg of rel) {
    if (!schema || schema.anyOf || schema.oneOf || schema.allOf || schema.$ref) return undefined;
    schema = typeof seg === 'number' ? schema.items : schema.properties?.[seg];
  }
  if (!schema || schema.anyOf || schema.oneOf || schema.allOf || schema.$ref) return undefined;
  const key = String(path[path.length - 1]);
  const declared = Object.keys((schema.properties ?? {}) as object);
  if (declared.includes(key)) return undefined;
  // a map the schema itself opens (tags, rank_pattern...): any key is declared
  if (schema.additionalProperties === true || (typeof schema.additionalProperties === 'object' && schema.additionalProperties !== null)) return undefined;
  if (schema.patternProperties && Object.keys(schema.patternProperties as object).some((re) => new RegExp(re).test(key))) return undefined;
  const parent = path.slice(0, -1).reduce<unknown>((cur, seg) => (cur as Record<string | number, unknown> | undefined)?.[seg], value);
  const siblings = [...new Set([...declared, ...(isPlainObject(parent) ? Object.keys(parent) : [])])].filter((k) => k !== key);
  return `no config file defines "${formatPath(path)}"${didYouMean(key, siblings)}; to add a new key write --set +${formatPath(path)}=...`;
}
