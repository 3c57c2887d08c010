/**
 * The plugins the framework itself provides (trackers and executors live in framework/, not
 * registry/): every registry the CLI builds loads them first, so `rass plugins tracker` and
 * `rass plugins executor` list them and configs select them by `{type: ...}` like any plugin.
 */
import { pluginPackage } from '../plugins/plugin-package.js';
import { builtinTrackerPlugins } from '../tracking/trackers.js';
import { builtinExecutorPlugins } from '../sweep/executors/index.js';

export const frameworkPackage = pluginPackage({ name: 'rass/framework', plugins: [...builtinTrackerPlugins, ...builtinExecutorPlugins] });
