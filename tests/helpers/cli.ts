import { PassThrough } from 'node:stream';
import { runCli } from '../../framework/cli/main.js';
import type { PluginPackage } from '../../framework/plugins/plugin-package.js';

/** `rass ARGS` in process with captured output; the exit code the command set does not leak into the test process. */
export async function runCliCaptured(args: string[], packages: readonly PluginPackage[], cwd?: string): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (b) => (out += b));
  stderr.on('data', (b) => (err += b));
  const code = await runCli(args, { packages, stdout, stderr, ...(cwd ? { cwd } : {}) });
  process.exitCode = undefined;
  return { code, out, err };
}
