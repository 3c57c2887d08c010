import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UserError } from '../errors.js';
import type { PluginPackage } from './plugin-package.js';
import type { PluginRegistry } from './registry.js';
import { hostApiOrThrow } from './host-api.js';

/**
 * Load a third-party plugin package named in a config's `plugins:` list: an npm package
 * name (resolved from the config file's directory, as Node would from there) or a local
 * directory / file path (relative to the config file). The module's default export is a
 * PluginPackage, or a function that receives this framework's public API and returns one
 * (which lets a package use the host's `definePlugin` without depending on a second copy).
 */
export async function loadExternalPackage(
  registry: PluginRegistry,
  specifier: string,
  fromDir: string,
  where = specifier,
): Promise<PluginPackage> {
  const isPath = specifier.startsWith('.') || specifier.startsWith('/') || isAbsolute(specifier);
  let url: string;
  if (isPath) {
    const p = resolve(fromDir, specifier);
    if (!existsSync(p)) throw new UserError(`${where}: plugin path ${p} does not exist`);
    const entry = statSync(p).isDirectory() ? resolveDirEntry(p, where) : p;
    url = pathToFileURL(entry).href;
  } else {
    try {
      const req = createRequire(resolve(fromDir, 'noop.js'));
      url = pathToFileURL(req.resolve(specifier)).href;
    } catch (e) {
      throw new UserError(`${where}: cannot find plugin package "${specifier}" from ${fromDir} (is it installed? npm install ${specifier})`, { cause: e });
    }
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${where}: failed to load plugin package ${specifier}: ${(e as Error).message}`, { cause: e });
  }
  const exported = mod.default ?? mod.plugins;
  const pkg = (typeof exported === 'function' ? await (exported as (api: unknown) => unknown)(hostApiOrThrow()) : exported) as PluginPackage | undefined;
  if (!pkg || typeof pkg !== 'object' || !Array.isArray((pkg as PluginPackage).plugins)) {
    throw new UserError(`${where}: ${specifier} does not export a plugin package (default export: { name, plugins: [...] } or (rass) => such an object)`);
  }
  registry.loadPackage(pkg, `${pkg.name ?? specifier} (${specifier})`);
  return pkg;
}

function resolveDirEntry(dir: string, where: string): string {
  const req = createRequire(resolve(dir, 'noop.js'));
  try {
    return req.resolve(dir);
  } catch {
    for (const f of ['index.js', 'index.mjs']) if (existsSync(resolve(dir, f))) return resolve(dir, f);
    throw new UserError(`${where}: plugin directory ${dir} has no package.json "main"/"exports" and no index.js`);
  }
}
