/** A helper-thread module for the SyncWorker tests: doubles numbers, throws or exits on request. */
import { serveSync } from '../../framework/host.js';

serveSync(
  (job: { kind: 'double' | 'throw' | 'exit'; x: number; payload?: Float32Array }) => {
    if (job.kind === 'throw') throw new Error(`refused ${job.x}`);
    if (job.kind === 'exit') process.exit(3);
    return { doubled: job.x * 2, big: new Float32Array(job.x).fill(job.x), payloadSum: job.payload?.reduce((a, b) => a + b, 0) ?? 0 };
  },
  (r) => [r.big.buffer as ArrayBuffer],
);
