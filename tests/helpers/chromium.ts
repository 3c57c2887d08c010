import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';

/**
 * Debian's Chromium for the report tests (installed by scripts/chromium/setup.sh); undefined
 * only when RASS_SKIP_CHROMIUM=1 says to skip, otherwise a missing browser is an error.
 */
export function chromiumPath(): string | undefined {
  try {
    return execFileSync('bash', [join(process.cwd(), 'scripts/chromium/setup.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 }).trim().split('\n').pop();
  } catch (e) {
    if (process.env.RASS_SKIP_CHROMIUM === '1') return undefined;
    throw new Error(`CHROMIUM UNAVAILABLE: scripts/chromium/setup.sh failed (${(e as Error).message.split('\n')[0]}); set RASS_SKIP_CHROMIUM=1 to skip this test`, { cause: e });
  }
}

/** A child process with captured output (CI=true: plain progress lines). */
export function runProcess(cmd: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const c = spawn(cmd, args, { env: { ...process.env, CI: 'true' } });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('exit', (code) => done({ code, out, err }));
  });
}

/** Headless flags that keep Chromium off the network, with a fresh profile. */
export function chromiumFlags(profile: string): string[] {
  return ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`];
}
