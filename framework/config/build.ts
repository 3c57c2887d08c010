import { dirname, isAbsolute, resolve } from 'node:path';
import type { PluginRegistry } from '../plugins/registry.js';
import type { ComponentNode, Logger, PluginContext } from '../plugins/context.js';
import { isComponentNode } from '../plugins/context.js';
import type { PluginKind } from '../plugins/kinds.js';
import { UserError } from '../errors.js';
import type { ResolvedConfig } from './resolved.js';
import { formatPath, isPlainObject, type ConfigPath } from './paths.js';
import { formatOrigin } from './origins.js';

export interface BuildBase {
  seed: number;
  log: Logger;
  services?: Record<string, unknown>;
  cfg?: ResolvedConfig;
  /** Path of the node in cfg.value (found by identity when omitted). */
  path?: string;
  cwd?: string;
}

function findPath(root: unknown, target: unknown, path: (string | number)[] = []): ConfigPath | undefined {
  if (root === target) return path;
  if (Array.isArray(root)) {
    for (let i = 0; i < root.length; i++) {
      const p = findPath(root[i], target, [...path, i]);
      if (p) return p;
    }
  } else if (isPlainObject(root)) {
    for (const [k, v] of Object.entries(root)) {
      const p = findPath(v, target, [...path, k]);
      if (p) return p;
    }
  }
  return undefined;
}

/**
 * Build a (validated) component node: look up its plugin and call `create(options, ctx)`
 * with the options minus `type`. `ctx.build` builds nested nodes the same way;
 * `ctx.resolvePath` resolves a relative path against the directory of the config file that
 * wrote the node (so `weights: ../w.safetensors` in a base config means what it says).
 */
export async function buildComponent<T>(node: ComponentNode, registry: PluginRegistry, base: BuildBase): Promise<T> {
  if (!isComponentNode(node)) throw new UserError(`${base.path ?? 'component'}: not a component node (expected { type: kind/name, ... })`);
  const plugin = registry.resolveType(node.type);
  const segs = base.cfg ? findPath(base.cfg.value, node) : undefined;
  const path = base.path ?? (segs ? formatPath(segs) : node.type);
  const origin = segs && base.cfg ? base.cfg.origin(segs) : undefined;
  const cwd = base.cwd ?? process.cwd();
  const { type: _type, ...options } = node;
  const ctx: PluginContext = {
    path,
    seed: base.seed,
    log: base.log,
    services: base.services ?? {},
    resolvePath: (p: string) => (isAbsolute(p) ? p : resolve(origin?.file ? dirname(origin.file) : cwd, p)),
    build: async <U>(child: ComponentNode, opts?: { expectKind?: PluginKind; path?: string }): Promise<U> => {
      if (opts?.expectKind && !child.type.startsWith(`${opts.expectKind}/`)) {
        const where = formatOrigin(base.cfg?.origin(findPath(base.cfg.value, child) ?? [])) || path;
        throw new UserError(`${where} ${opts.path ?? path}: expected a ${opts.expectKind} plugin, got "${child.type}"`);
      }
      return buildComponent<U>(child, registry, { ...base, path: opts?.path });
    },
  };
  return (await plugin.create(options, ctx)) as T;
}
