/**
 * `rass _trial-worker`: internal. The local sweep executor starts these (with an IPC channel)
 * and sends them trials to run one at a time; see framework/sweep/trial-worker.ts.
 */
import type { CommandSpec } from '../../plugins/command-spec.js';
import { serveTrials } from '../../sweep/trial-worker.js';

export const trialWorkerCommand: CommandSpec = {
  name: '_trial-worker',
  summary: 'internal: runs sweep trials sent by `rass sweep` over IPC',
  hidden: true,
  configure(cmd, ctx) {
    cmd.action(async () => {
      await serveTrials({ newRegistry: ctx.newRegistry, cwd: ctx.cwd });
      // Trials write their logs and journals synchronously: nothing is left to flush, and
      // a handle a plugin left open must not keep the worker alive.
      process.exit(0);
    });
  },
};
