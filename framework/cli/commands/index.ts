import type { CommandSpec } from '../command.js';
import { pluginsCommand } from './plugins.js';

/** The framework's own sub-commands, in help order. Plugin packages may add more. */
export const frameworkCommands: readonly CommandSpec[] = [
  pluginsCommand,
];
