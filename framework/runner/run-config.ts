import { dirname } from 'node:path';
import type { PluginRegistry } from '../plugins/registry.js';
import { loadExternalPackage } from '../plugins/load-external.js';
import { isUserError } from '../errors.js';
import { ConfigError, validateConfig, type ResolvedConfig } from '../config/index.js';
import { runConfigSchema } from './run-schema.js';

/** Validate a run config (the top-level keys the runner owns, and every component node in it). */
export function validateRunConfig(cfg: ResolvedConfig, registry: PluginRegistry): void {
  validateConfig(cfg, registry, runConfigSchema);
}

/** Load the third-party plugin packages a config lists under `plugins:` into the registry. */
export async function loadConfigPlugins(cfg: ResolvedConfig, registry: PluginRegistry): Promise<void> {
  const list = cfg.value.plugins;
  if (list === undefined) return;
  if (!Array.isArray(list)) throw new ConfigError([{ origin: cfg.origin(['plugins']), path: 'plugins', message: 'expected a list of npm package names or paths' }]);
  for (let i = 0; i < list.length; i++) {
    const spec = list[i];
    const origin = cfg.origin(['plugins', i]);
    if (typeof spec !== 'string') throw new ConfigError([{ origin, path: `plugins[${i}]`, message: 'expected a package name or path' }]);
    const fromDir = origin?.file ? dirname(origin.file) : process.cwd();
    const already = registry.loadedPackages().some((p) => p.source.endsWith(`(${spec})`));
    if (already) continue;
    try {
      await loadExternalPackage(registry, spec, fromDir, `plugins[${i}]`);
    } catch (e) {
      if (!isUserError(e)) throw e;
      throw new ConfigError([{ origin, path: `plugins[${i}]`, message: (e as Error).message.replace(/^plugins\[\d+\]: /, '') }]);
    }
  }
}
