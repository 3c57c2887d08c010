/**
 * Build a degradation from a component node outside a run (tests, `rass degrade`, the bench),
 * with the framework's own validation (schema defaults, unknown keys, file-named errors).
 */
import { dirname, resolve } from 'node:path';
import { PluginRegistry, UserError, buildNode, loadConfig, pluginPackage, type AnyPlugin, type ComponentNode, type Degradation } from '../../../framework/api.js';

export interface BuildOptions {
  /** Plugins to resolve `type` against (e.g. this folder's plugins). */
  plugins: readonly AnyPlugin[];
  seed?: number;
  /** Base directory for relative paths. */
  baseDir?: string;
  path?: string;
}

const registries = new WeakMap<readonly AnyPlugin[], PluginRegistry>();

export async function buildDegradation(node: ComponentNode, o: BuildOptions): Promise<Degradation> {
  if (!node.type.startsWith('degradation/')) throw new UserError(`${o.path ?? 'degradation'}: expected a degradation plugin, got ${node.type}`);
  let registry = registries.get(o.plugins);
  if (!registry) {
    registry = PluginRegistry.withPackages(pluginPackage({ name: 'rass/degradations', plugins: o.plugins }));
    registries.set(o.plugins, registry);
  }
  return buildNode<Degradation>(node, registry, { seed: o.seed, baseDir: o.baseDir, path: o.path });
}

/**
 * Build a degradation pipeline file (`configs/_base_/degradations/rass-full.yaml`) through the
 * config loader, so its `extends`/`!patch` apply and errors name the file; relative paths in it
 * resolve against its folder.
 */
export async function buildDegradationFile(file: string, o: Omit<BuildOptions, 'baseDir'>): Promise<Degradation> {
  const abs = resolve(file);
  const cfg = await loadConfig(abs);
  return buildDegradation(cfg.value as unknown as ComponentNode, { ...o, baseDir: dirname(abs), path: o.path ?? abs });
}
