import { Container, ContainerModule } from 'inversify';
import type { ServiceIdentifier } from 'inversify';
import type { AnyPlugin } from './define-plugin.js';
import { PLUGIN_KINDS, isPluginKind, type PluginKind } from './kinds.js';
import { UserError, didYouMean } from '../errors.js';

/** The inversify service identifier under which every plugin of a kind is bound (named by plugin name). */
export function kindToken(kind: PluginKind): ServiceIdentifier<AnyPlugin> {
  return Symbol.for(`rass.plugin.${kind}`);
}

/**
 * What the registry needs of a plugin package: its plugins, and the names of the commands it
 * brings (two packages may not bring one name). The full type, with the command specs, is
 * PluginPackage (plugin-package.ts), which builds on this one; keeping the registry to this
 * part keeps plugins/ free of import cycles (command specs refer to the registry).
 */
export interface PackageContents {
  readonly name: string;
  readonly plugins: readonly AnyPlugin[];
  readonly commands?: readonly { readonly name: string }[];
}

/**
 * The identifier of the unnamed multi-binding of a kind's plugins, for listing: inversify's
 * getAll() does not return named bindings, so each plugin is bound both ways.
 */
export function kindListToken(kind: PluginKind): ServiceIdentifier<AnyPlugin> {
  return Symbol.for(`rass.plugins.${kind}`);
}

export interface RegisteredPlugin {
  plugin: AnyPlugin;
  /** Where it came from: package name plus, for external packages, the path or specifier. */
  source: string;
}

/**
 * The plugin registry of one process/run: an inversify container with one ContainerModule
 * per loaded plugin package and multi-bindings per kind. Nothing registers itself by being
 * imported; packages are loaded explicitly, and a second plugin with the same kind/name is
 * an error naming both sources.
 */
export class PluginRegistry {
  /**
   * The one way to make a registry with packages loaded: the CLI (one per command, a fresh one
   * per sweep trial), \`rass degrade\` and library helpers all use it.
   */
  static withPackages(...packages: readonly PackageContents[]): PluginRegistry {
    const r = new PluginRegistry();
    for (const p of packages) r.loadPackage(p);
    return r;
  }

  readonly container = new Container();
  private readonly sources = new Map<string, string>();
  private readonly packages: { pkg: PackageContents; source: string }[] = [];

  loadPackage(pkg: PackageContents, source = pkg.name): void {
    const seen = new Map<string, string>();
    for (const p of pkg.plugins) {
      if (!isPluginKind(p.kind)) {
        throw new UserError(`plugin package ${source}: plugin "${p.name}" has unknown kind "${p.kind}"; kinds are ${PLUGIN_KINDS.join(', ')}`);
      }
      const key = `${p.kind}/${p.name}`;
      const existing = this.sources.get(key) ?? seen.get(key);
      if (existing !== undefined) {
        throw new UserError(`duplicate plugin ${key}: defined by ${existing} and by ${source}`);
      }
      seen.set(key, source);
    }
    for (const c of pkg.commands ?? []) {
      const other = this.packages.find((x) => (x.pkg.commands ?? []).some((o) => o.name === c.name));
      if (other) throw new UserError(`duplicate command "${c.name}": defined by ${other.source} and by ${source}`);
    }
    this.container.load(toContainerModule(pkg));
    for (const [k, s] of seen) this.sources.set(k, s);
    this.packages.push({ pkg, source });
  }

  has(kind: PluginKind, name: string): boolean {
    return this.sources.has(`${kind}/${name}`);
  }

  /** The plugin, or a UserError listing the known ones (with a suggestion for a typo). */
  get(kind: PluginKind, name: string): AnyPlugin {
    if (!this.has(kind, name)) {
      const names = this.list(kind).map((p) => p.name);
      const known = names.length ? `known ${kind} plugins: ${names.join(', ')}` : `no ${kind} plugins are loaded`;
      throw new UserError(`unknown plugin ${kind}/${name}${didYouMean(name, names)}; ${known}`);
    }
    return this.container.get(kindToken(kind), { name });
  }

  /** Resolve "kind/name" (the `type` of a component node). */
  resolveType(type: string): AnyPlugin {
    const m = /^([a-z]+)\/(.+)$/.exec(type);
    if (!m) throw new UserError(`"${type}" is not a plugin type: expected "kind/name", e.g. "loss/mse"`);
    const [, kind, name] = m;
    if (!isPluginKind(kind)) {
      throw new UserError(`"${type}": unknown plugin kind "${kind}"${didYouMean(kind, PLUGIN_KINDS)}; kinds are ${PLUGIN_KINDS.join(', ')}`);
    }
    return this.get(kind, name);
  }

  list(kind?: PluginKind): AnyPlugin[] {
    const kinds = kind ? [kind] : [...PLUGIN_KINDS];
    const out: AnyPlugin[] = [];
    for (const k of kinds) {
      if (this.container.isBound(kindListToken(k))) out.push(...this.container.getAll(kindListToken(k)));
    }
    return out.sort((a, b) => (a.kind === b.kind ? a.name.localeCompare(b.name) : a.kind.localeCompare(b.kind)));
  }

  sourceOf(plugin: AnyPlugin): string {
    return this.sources.get(`${plugin.kind}/${plugin.name}`) ?? '?';
  }

  /** The packages loaded so far, in order, with where each came from. */
  packageRecords(): readonly { pkg: PackageContents; source: string }[] {
    return this.packages;
  }

  loadedPackages(): { name: string; source: string }[] {
    return this.packages.map(({ pkg, source }) => ({ name: pkg.name, source }));
  }
}

function toContainerModule(pkg: PackageContents): ContainerModule {
  return new ContainerModule(({ bind }) => {
    for (const p of pkg.plugins) {
      bind(kindToken(p.kind)).toConstantValue(p).whenNamed(p.name);
      bind(kindListToken(p.kind)).toConstantValue(p);
    }
  });
}
