import type { CommandSpec } from '../../plugins/command-spec.js';
import { pluginsCommand } from './plugins.js';
import { configCommand } from './config.js';
import { validateCommand } from './validate.js';
import { runCommand } from './run.js';
import { runsCommand } from './runs.js';
import { doctorCommand } from './doctor.js';
import { sweepCommand } from './sweep.js';
import { reportCommand } from './report.js';
import { trialWorkerCommand } from './trial-worker.js';

/** The framework's own sub-commands, in help order. Plugin packages may add more. */
export const frameworkCommands: readonly CommandSpec[] = [
  pluginsCommand,
  configCommand,
  validateCommand,
  runCommand,
  runsCommand,
  sweepCommand,
  reportCommand,
  doctorCommand,
  trialWorkerCommand,
];
