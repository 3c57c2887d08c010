import { PassThrough } from 'node:stream';
import { PluginRegistry } from '../../framework/plugins/registry.js';
import { registryPackage } from '../../registry/index.js';
import { experimentsPackage } from '../../experiments/index.js';

/** The registry `rass` has: the built-in plugins and the experiments. */
export function fullRegistry(): PluginRegistry {
  const registry = new PluginRegistry();
  registry.loadPackage(registryPackage);
  registry.loadPackage(experimentsPackage);
  return registry;
}

/** stdout/stderr for an in-process run, with what they received. */
export function capturedStreams(): { stdout: PassThrough; stderr: PassThrough; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (b) => (out += b));
  stderr.on('data', (b) => (err += b));
  return { stdout, stderr, out: () => out, err: () => err };
}
