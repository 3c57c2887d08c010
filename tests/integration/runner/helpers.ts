import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCliCaptured } from '../../helpers/cli.js';
import { packageRoot } from '../../../framework/paths.js';
import { PluginRegistry } from '../../../framework/plugins/registry.js';
import { experimentsPackage } from '../../../experiments/index.js';

export const ROOT = packageRoot();
export const FIXTURES = join(ROOT, 'tests', 'fixtures', 'runner');

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `rass-${tag}-`));
}

/** A capturing stream pair (one helper for every in-process run test). */
export { capturedStreams as streams } from '../../helpers/experiments.js';

/** The registry a user's `rass` has for these tests: the experiments package (toy classifier and its default loss). */
export function registry(): PluginRegistry {
  const r = new PluginRegistry();
  r.loadPackage(experimentsPackage);
  return r;
}

/** `rass ARGS` in process; the exit code the command set does not leak into the test process. */
export async function cli(args: string[], cwd = ROOT): Promise<{ code: number; out: string; err: string }> {
  return runCliCaptured(args, [experimentsPackage], cwd);
}
