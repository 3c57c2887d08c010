import { capturedStreams } from './experiments.js';
import { runCli } from '../../framework/cli/main.js';
import type { PluginPackage } from '../../framework/plugins/plugin-package.js';

/** `rass ARGS` in process with captured output; the exit code the command set does not leak into the test process. */
export async function runCliCaptured(args: string[], packages: readonly PluginPackage[], cwd?: string): Promise<{ code: number; out: string; err: string }> {
  const { stdout, stderr, out, err } = capturedStreams();
  const code = await runCli(args, { packages, stdout, stderr, ...(cwd ? { cwd } : {}) });
  process.exitCode = undefined;
  return { code, out: out(), err: err() };
}
