import type { Command } from 'commander';
import type { PluginRegistry } from './registry.js';

/** What every sub-command gets: the registry with the built-in packages loaded, and output streams. */
export interface CliContext {
  readonly registry: PluginRegistry;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Working directory the command runs in (tests set it; defaults to process.cwd()). */
  readonly cwd: string;
  /** A new registry with the same built-in packages (for work that must not share plugin state, e.g. sweep trials). */
  readonly newRegistry: () => PluginRegistry;
  /** How to start this CLI again (what sweep workers and Slurm tasks run); unset in-process (tests): the package's dist/bin/rass.js. */
  readonly cli?: CliCommand;
}

/**
 * A `rass` sub-command. `configure` adds arguments/options and an action to the commander
 * command it is given. Framework commands live in framework/cli/commands/; plugin packages
 * may contribute more through PluginPackage.commands.
 */
export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** internal commands (started by other commands) are left out of `rass --help` */
  readonly hidden?: boolean;
  configure(cmd: Command, ctx: CliContext): void;
}

/** How to start the CLI that runs the sweep (node, its flags, the entry script): what a worker or a job runs. */
export interface CliCommand {
  /** the program, e.g. process.execPath */
  command: string;
  /** arguments before the sub-command, e.g. [--import, tsx, /path/bin/rass.ts] */
  args: string[];
}
