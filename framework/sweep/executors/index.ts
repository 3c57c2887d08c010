import { localExecutorPlugin } from './local.js';
import { slurmExecutorPlugin } from './slurm.js';

/** The executors the framework ships (the CLI registers them; registries without them fall back to these). */
export const builtinExecutorPlugins = [localExecutorPlugin, slurmExecutorPlugin];
