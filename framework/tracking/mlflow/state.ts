/**
 * `<runDir>/mlflow.json`: which MLflow run mirrors this local run on each server, and how
 * far the journal has been acknowledged there. It is rewritten atomically (temp + rename)
 * after every acknowledged batch, so after a crash shipping resumes at the next event and
 * nothing is created twice. Keyed by tracking URI (without credentials): a run may be
 * mirrored to several servers.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MlflowTargetState {
  experimentId: string;
  runId: string;
  artifactUri: string;
  /** the last journal seq the server acknowledged (-1: none yet) */
  ackedSeq: number;
  /** artifact path -> sha256 of the uploaded bytes */
  uploadedArtifacts: Record<string, string>;
  /** params the server refused because they were logged before with another value */
  conflicts?: string[];
}

export interface MlflowStateFile {
  version: 1;
  targets: Record<string, MlflowTargetState>;
}

export const STATE_FILE = 'mlflow.json';

export function readState(dir: string): MlflowStateFile {
  const p = join(dir, STATE_FILE);
  if (!existsSync(p)) return { version: 1, targets: {} };
  try {
    const s = JSON.parse(readFileSync(p, 'utf8')) as MlflowStateFile;
    if (s.version !== 1 || typeof s.targets !== 'object') throw new Error('unknown layout');
    return s;
  } catch (e) {
    throw new Error(`${p}: unreadable MLflow state (${(e as Error).message}); delete it to re-upload the run as a new MLflow run`, { cause: e });
  }
}

export function writeState(dir: string, state: MlflowStateFile): void {
  const p = join(dir, STATE_FILE);
  const tmp = `${p}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 1) + '\n');
  renameSync(tmp, p);
}

export function targetState(dir: string, uri: string): MlflowTargetState | undefined {
  return readState(dir).targets[uri];
}

export function updateTarget(dir: string, uri: string, target: MlflowTargetState): void {
  const s = readState(dir);
  s.targets[uri] = target;
  writeState(dir, s);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A lock directory inside the run dir (mkdir is atomic). Returns a release function, or the
 * pid of the live holder. A lock whose holder process is gone is taken over.
 */
export function tryLock(dir: string, name: string): { release: () => void } | { heldBy: number } {
  const lockDir = join(dir, name);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          rmSync(lockDir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = NaN;
      try {
        pid = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
      } catch {
        /* being created right now, or left empty by a crash */
      }
      if (Number.isInteger(pid) && pid > 0 && (pid === process.pid || pidAlive(pid))) return { heldBy: pid };
      if (!Number.isInteger(pid)) {
        // A holder between mkdir and writing its pid: give it a moment before calling it stale.
        const start = Date.now();
        while (Date.now() - start < 50) {
          /* spin briefly */
        }
        try {
          pid = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
          if (pid > 0 && pidAlive(pid)) return { heldBy: pid };
        } catch {
          /* still empty: stale */
        }
      }
      rmSync(lockDir, { recursive: true, force: true });
    }
  }
  throw new Error(`could not take lock ${lockDir}`);
}

/** Take a short-lived lock, waiting (polling) while another live process holds it. */
export async function withLock<T>(dir: string, name: string, fn: () => Promise<T>, waitMs = 60_000): Promise<T> {
  const deadline = Date.now() + waitMs;
  while (true) {
    const l = tryLock(dir, name);
    if ('release' in l) {
      try {
        return await fn();
      } finally {
        l.release();
      }
    }
    if (Date.now() > deadline) throw new Error(`${join(dir, name)} is held by process ${l.heldBy} for more than ${waitMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
