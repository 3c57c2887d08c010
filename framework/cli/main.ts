import { Command, CommanderError } from 'commander';
import { PluginRegistry } from '../plugins/registry.js';
import { packageCommands, type PluginPackage } from '../plugins/plugin-package.js';
import type { CliContext, CommandSpec } from '../plugins/command-spec.js';
import { reportError } from '../errors.js';
import { frameworkCommands } from './commands/index.js';
import { frameworkPackage } from './builtin-plugins.js';
import type { CliCommand } from '../contracts/executor.js';

export interface CliOptions {
  /** The built-in plugin packages (bin/rass.ts passes registry/ and experiments/). */
  packages: readonly PluginPackage[];
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  cwd?: string;
  /** How to start this CLI again (sweep workers, Slurm tasks): bin/rass.ts passes node, its flags and its own path. */
  cli?: CliCommand;
}

/** Build the `rass` program: framework commands plus commands contributed by plugin packages. */
export function buildProgram(opts: CliOptions): { program: Command; ctx: CliContext } {
  const newRegistry = () => PluginRegistry.withPackages(frameworkPackage, ...opts.packages);
  const ctx: CliContext = {
    registry: newRegistry(),
    newRegistry,
    stdout: opts.stdout ?? process.stdout,
    stderr: opts.stderr ?? process.stderr,
    cwd: opts.cwd ?? process.cwd(),
    ...(opts.cli ? { cli: opts.cli } : {}),
  };
  const program = new Command('rass')
    .description('Experiment framework for restoration-for-segmentation research (SCR, RASS, baselines, ablations).')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    });
  const specs: CommandSpec[] = [...frameworkCommands, ...packageCommands(ctx.registry).map((c) => c.command)];
  for (const spec of specs) {
    const cmd = program.command(spec.name, { hidden: spec.hidden ?? false }).description(spec.summary).exitOverride();
    spec.configure(cmd, ctx);
  }
  return { program, ctx };
}

/** Run the CLI; resolves to the process exit code (0 ok, 1 internal error, 2 user error). */
export async function runCli(argv: readonly string[], opts: CliOptions): Promise<number> {
  const stderr = opts.stderr ?? process.stderr;
  try {
    const { program } = buildProgram(opts);
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help / version are "errors" in commander's exitOverride mode
      if (e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      return 2;
    }
    return reportError(e, stderr);
  }
}
