/** A helper-thread module for the SyncWorker tests: doubles numbers, throws or exits on request. */
import { serveSync } from '../../framework/host.js';

serveSync((job: { kind: 'double' | 'throw' | 'exit'; x: number }) => {
  if (job.kind === 'throw') throw new Error(`refused ${job.x}`);
  if (job.kind === 'exit') process.exit(3);
  return { doubled: job.x * 2, big: new Float32Array(job.x).fill(job.x) };
});
