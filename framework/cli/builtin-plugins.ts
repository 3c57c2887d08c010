/**
 * The plugins the framework itself provides (trackers and executors live in framework/, not
 * registry/): every registry the CLI builds loads them first, so `rass plugins tracker` and
 * `rass plugins executor` list them and configs select them by `{type: ...}` like any plugin.
 */
import { pluginPackage } from '../plugins/plugin-package.js';
import { builtinTrackerPlugins } from '../tracking/trackers.js';
import { localExecutorPlugin } from '../sweep/executors/local.js';
import { slurmExecutorPlugin } from '../sweep/executors/slurm.js';

export const frameworkPackage = pluginPackage({ name: 'rass/framework', plugins: [...builtinTrackerPlugins, localExecutorPlugin, slurmExecutorPlugin] });
