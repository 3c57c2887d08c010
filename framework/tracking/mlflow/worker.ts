/**
 * Worker-thread side of ThreadedMlflowTracker: runs an MlflowTracker off the training loop's
 * thread, so reading the journal, building batches, HTTP and state writes never take time
 * from a step. Messages: {op:'append'} | {op:'flush'|'close', id, timeoutMs}.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { MlflowClient } from './client.js';
import { MlflowTracker } from './tracker.js';
import type { ThreadedTrackerInit, ToMain, ToWorker } from './threaded-tracker.js';

const init = workerData as ThreadedTrackerInit;
const port = parentPort!;
const send = (m: ToMain) => port.postMessage(m);
let tracker: MlflowTracker | undefined;
try {
  const client = new MlflowClient(init.client);
  tracker = new MlflowTracker({ ...init.tracker, client, log: (message) => send({ op: 'log', message }), warn: (message) => send({ op: 'log', message }) });
  send({ op: 'ready' });
} catch (e) {
  send({ op: 'ready', error: (e as Error).message });
}

port.on('message', (m: ToWorker) => {
  if (!tracker) {
    if (m.op !== 'append') send({ op: 'done', id: m.id });
    return;
  }
  if (m.op === 'append') {
    tracker.onAppend();
    return;
  }
  const t = tracker;
  const work = m.op === 'flush' ? t.flush({ timeoutMs: m.timeoutMs }) : t.close({ timeoutMs: m.timeoutMs });
  work.then(
    () => send({ op: 'done', id: m.id, error: t.error?.message }),
    (e: unknown) => send({ op: 'done', id: m.id, error: (e as Error).message }),
  );
});
