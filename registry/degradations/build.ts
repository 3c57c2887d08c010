/**
 * Build a degradation from a component node outside a run (tests, `rass degrade`, the bench),
 * with the framework's own validation (schema defaults, unknown keys, file-named errors).
 */
import { PluginRegistry, UserError, buildNode, pluginPackage, type AnyPlugin, type ComponentNode, type Degradation } from '../../framework/api.js';

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
    registry = new PluginRegistry();
    registry.loadPackage(pluginPackage({ name: 'rass/degradations', plugins: o.plugins }));
    registries.set(o.plugins, registry);
  }
  return buildNode<Degradation>(node, registry, { seed: o.seed, baseDir: o.baseDir, path: o.path });
}
