/**
 * The public API plugin packages use. External packages receive this object when their
 * default export is a function, so they need no second copy of the framework.
 * Add here only what a plugin author needs; everything else stays internal.
 */
export { definePlugin } from './plugins/define-plugin.js';
export type { Plugin, AnyPlugin, PluginOutput } from './plugins/define-plugin.js';
export { pluginPackage } from './plugins/plugin-package.js';
export type { PluginPackage } from './plugins/plugin-package.js';
export type { PluginContext, ComponentNode, Logger } from './plugins/context.js';
export { isComponentNode } from './plugins/context.js';
export { PLUGIN_KINDS } from './plugins/kinds.js';
export type { PluginKind } from './plugins/kinds.js';
export type { CommandSpec, CliContext } from './cli/command.js';
export { UserError } from './errors.js';
export { componentSchema } from './plugins/schema-helpers.js';
