/**
 * Build a degradation from a component node outside a run (tests, `rass degrade`, the bench):
 * a small PluginContext that validates each node against its plugin's schema (defaults
 * applied, like the run config validator) and builds nested nodes recursively.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { UserError, isComponentNode, type AnyPlugin, type ComponentNode, type Degradation, type PluginContext } from '../../framework/api.js';

const ajv = new Ajv({ useDefaults: true, strict: false, allErrors: true });
const validators = new WeakMap<AnyPlugin, ValidateFunction>();

function validatorFor(p: AnyPlugin): ValidateFunction {
  let v = validators.get(p);
  if (!v) {
    v = ajv.compile({ ...(p.schema as object), type: 'object' });
    validators.set(p, v);
  }
  return v;
}

export interface BuildOptions {
  /** Plugins to resolve `type` against (default: this folder's plugins). */
  plugins: readonly AnyPlugin[];
  seed?: number;
  /** Base directory for relative paths. */
  baseDir?: string;
  path?: string;
}

export async function buildComponent<T>(node: ComponentNode, o: BuildOptions): Promise<T> {
  const path = o.path ?? 'degradation';
  const plugin = o.plugins.find((p) => `${p.kind}/${p.name}` === node.type);
  if (!plugin) {
    const known = o.plugins.map((p) => `${p.kind}/${p.name}`).join(', ');
    throw new UserError(`${path}: unknown plugin "${node.type}"; known: ${known}`);
  }
  const { type: _type, ...options } = structuredClone(node);
  void _type;
  const validate = validatorFor(plugin);
  if (!validate(options)) {
    const msg = (validate.errors ?? []).map((e) => `${path}${e.instancePath.replace(/\//g, '.')}: ${e.message}`).join('; ');
    throw new UserError(`invalid options for ${node.type}: ${msg}`);
  }
  const ctx: PluginContext = {
    path,
    seed: o.seed ?? 0,
    log: { info: (m) => console.log(m), warn: (m) => console.warn(m), debug: () => undefined },
    resolvePath: (p) => (o.baseDir ? new URL(p, `file://${o.baseDir}/`).pathname : p),
    build: <U>(child: ComponentNode, opts?: { expectKind?: string; path?: string }) => {
      if (!isComponentNode(child)) throw new UserError(`${opts?.path ?? path}: not a component node`);
      if (opts?.expectKind && !child.type.startsWith(`${opts.expectKind}/`)) {
        throw new UserError(`${opts.path ?? path}: expected a ${opts.expectKind} plugin, got ${child.type}`);
      }
      return buildComponent<U>(child, { ...o, path: opts?.path ?? path });
    },
    services: {},
  };
  return (await plugin.create(options, ctx)) as T;
}

export async function buildDegradation(node: ComponentNode, o: BuildOptions): Promise<Degradation> {
  if (!node.type.startsWith('degradation/')) throw new UserError(`${o.path ?? 'degradation'}: expected a degradation plugin, got ${node.type}`);
  return buildComponent<Degradation>(node, o);
}
