import { pluginPackage, type AnyPlugin } from '../framework/api.js';

/** Experiment plugins (kind `experiment`), listed explicitly. */
const plugins: AnyPlugin[] = [];

export const experimentsPackage = pluginPackage({ name: 'rass/experiments', plugins });
