/**
 * A real MLflow tracking server for integration tests and the tracking benchmark: mlflow from
 * PyPI (scripts/mlflow/requirements.txt) in a cached venv (scripts/py-venv.sh), a sqlite
 * backend and a local artifact root in a temp dir, served on a free 127.0.0.1 port with the
 * artifact proxy on. `kill()` / `restart()` let fault tests take it down mid-run.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../framework/paths.js';

let venvCache: string | undefined;

/** True when the environment opted out of the MLflow tests (prints one loud line). */
export function mlflowSkipped(): boolean {
  if (process.env.RASS_SKIP_MLFLOW !== '1') return false;
  process.stderr.write('\n!!!!! RASS_SKIP_MLFLOW=1: MLflow integration tests are SKIPPED (no real MLflow server was tested) !!!!!\n\n');
  return true;
}

/** The venv with mlflow installed (created once, ~1-3 min); throws loudly when pip fails. */
export function mlflowVenv(): string {
  if (venvCache) return venvCache;
  const root = packageRoot();
  try {
    venvCache = execFileSync('bash', [join(root, 'scripts/py-venv.sh'), 'mlflow', join(root, 'scripts/mlflow/requirements.txt')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 15 * 60_000,
    }).trim();
  } catch (e) {
    throw new Error(`could not install mlflow into a venv (scripts/py-venv.sh mlflow scripts/mlflow/requirements.txt): ${(e as Error).message}. Set RASS_SKIP_MLFLOW=1 to skip the MLflow tests on a machine without PyPI.`, { cause: e });
  }
  return venvCache;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface MlflowServer {
  readonly uri: string;
  readonly port: number;
  /** holds mlflow.db, artifacts/ and server.log */
  readonly dir: string;
  /** SIGKILL the server (and its workers): a crash, not a shutdown. */
  kill(): Promise<void>;
  /** Start again on the same port with the same store. */
  restart(): Promise<void>;
  /** Stop for good and delete the store. */
  stop(): Promise<void>;
}

async function waitHealthy(uri: string, proc: ChildProcess, logFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) break;
    try {
      const r = await fetch(`${uri}/health`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  let log = '';
  try {
    log = readFileSync(logFile, 'utf8').slice(-3000);
  } catch {
    /* no log */
  }
  throw new Error(`mlflow server at ${uri} did not become healthy (exit code ${proc.exitCode}); log tail:\n${log}`);
}

export async function startMlflowServer(opts: { timeoutMs?: number } = {}): Promise<MlflowServer> {
  const venv = mlflowVenv();
  const dir = mkdtempSync(join(tmpdir(), 'rass-mlflow-'));
  mkdirSync(join(dir, 'artifacts'));
  const port = await freePort();
  const uri = `http://127.0.0.1:${port}`;
  const logFile = join(dir, 'server.log');
  let proc: ChildProcess | undefined;
  const launch = async () => {
    const fd = openSync(logFile, 'a');
    proc = spawn(
      join(venv, 'bin', 'mlflow'),
      ['server', '--backend-store-uri', `sqlite:///${join(dir, 'mlflow.db')}`, '--artifacts-destination', join(dir, 'artifacts'), '--serve-artifacts', '--host', '127.0.0.1', '--port', String(port), '--workers', '1'],
      // Own process group, so kill() takes the server's worker processes down with it.
      { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, MLFLOW_TRACKING_URI: '', PYTHONUNBUFFERED: '1' } },
    );
    closeSync(fd);
    proc.unref();
    await waitHealthy(uri, proc, logFile, opts.timeoutMs ?? 120_000);
  };
  const killGroup = async () => {
    const p = proc;
    if (!p || p.exitCode !== null || p.pid === undefined) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  };
  await launch();
  return {
    uri,
    port,
    dir,
    kill: killGroup,
    restart: launch,
    stop: async () => {
      await killGroup();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
