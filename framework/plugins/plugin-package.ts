import type { AnyPlugin } from './define-plugin.js';
import type { CommandSpec } from './command-spec.js';
import type { PackageContents, PluginRegistry } from './registry.js';

/**
 * A plugin package: what a built-in folder (registry/, experiments/) or a third-party
 * npm package / local directory exports. Plain data, so that a package built against
 * another copy of this framework still loads: the registry turns it into one inversify
 * ContainerModule with the host's own inversify.
 */
export interface PluginPackage extends PackageContents {
  /** Package name shown as the plugin's source, e.g. "rass/registry" or "my-losses". */
  readonly name: string;
  readonly plugins: readonly AnyPlugin[];
  /** Extra `rass` sub-commands this package contributes (e.g. `rass degrade`). */
  readonly commands?: readonly CommandSpec[];
}

export function pluginPackage(pkg: PluginPackage): PluginPackage {
  return Object.freeze({ ...pkg, plugins: Object.freeze([...pkg.plugins]), commands: Object.freeze([...(pkg.commands ?? [])]) });
}

/** The `rass` sub-commands the loaded packages contribute, with the package each came from. */
export function packageCommands(registry: PluginRegistry): { command: CommandSpec; source: string }[] {
  // every package reaches the registry as a PluginPackage; the registry keeps only the part it needs
  return registry.packageRecords().flatMap(({ pkg, source }) => ((pkg as PluginPackage).commands ?? []).map((command) => ({ command, source })));
}
