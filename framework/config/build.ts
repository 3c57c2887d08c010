import { dirname, isAbsolute, resolve } from 'node:path';
import type { PluginRegistry } from '../plugins/registry.js';
import type { ComponentNode, Logger, PluginContext } from '../plugins/context.js';
import { isComponentNode } from '../plugins/context.js';
import type { PluginKind } from '../plugins/kinds.js';
import { UserError } from '../errors.js';
import type { ResolvedConfig } from './resolved.js';
import { parsePath, type ConfigPath } from './paths.js';
import { formatOrigin } from './origins.js';

export interface BuildBase {
  seed: number;
  log: Logger;
  services?: Record<string, unknown>;
  /** The resolved config the node belongs to: its origins say which file wrote the node. */
  cfg?: ResolvedConfig;
  /**
   * The node's path in cfg.value (`experiment.head`), given by whoever builds it: the runner
   * for the experiment, the parent plugin (`ctx.build(node, { path })`) below. It names the
   * node in errors and finds its origin, so a copied node (a pipeline stage, an element
   * rebuilt with its id) still resolves relative paths against the file that wrote it.
   */
  path?: string;
  /** The kind the node must have (`experiment` for a run's top node); checked before building. */
  expectKind?: PluginKind;
  cwd?: string;
}

function segmentsOf(path: string | undefined): ConfigPath | undefined {
  if (path === undefined) return undefined;
  if (path === '') return []; // the document's own top-level node (a degradation file)
  try {
    return parsePath(path.replace(/^\./, '')); // children of a document's top-level node (path '') start with a dot
  } catch {
    return undefined; // a display name rather than a config path: no origin
  }
}

/**
 * Build a (validated) component node: check its kind, look up its plugin and call
 * `create(options, ctx)` with the options minus `type`. `ctx.build` builds nested nodes the
 * same way; `ctx.resolvePath` resolves a relative path against the directory of the config
 * file that wrote the node (so `weights: ../w.safetensors` in a base config means what it says).
 */
export async function buildComponent<T>(node: ComponentNode, registry: PluginRegistry, base: BuildBase): Promise<T> {
  const path = base.path ?? (isComponentNode(node) ? node.type : 'component');
  const segs = segmentsOf(base.path);
  const origin = segs && base.cfg ? base.cfg.origin(segs) : undefined;
  const where = origin ? `${formatOrigin(origin)} ` : '';
  if (!isComponentNode(node)) throw new UserError(`${where}${path}: not a component node (expected { type: kind/name, ... })`);
  if (base.expectKind && !node.type.startsWith(`${base.expectKind}/`)) {
    throw new UserError(`${where}${path}: expected a ${base.expectKind} plugin, got "${node.type}"`);
  }
  const plugin = registry.resolveType(node.type);
  const cwd = base.cwd ?? process.cwd();
  const { type: _type, ...options } = node;
  const ctx: PluginContext = {
    path,
    seed: base.seed,
    log: base.log,
    services: base.services ?? {},
    resolvePath: (p: string) => (isAbsolute(p) ? p : resolve(origin?.file ? dirname(origin.file) : (origin?.cwd ?? cwd), p)),
    build: async <U>(child: ComponentNode, opts?: { expectKind?: PluginKind; path?: string }): Promise<U> =>
      buildComponent<U>(child, registry, { ...base, path: opts?.path, expectKind: opts?.expectKind }),
  };
  return (await plugin.create(options, ctx)) as T;
}
