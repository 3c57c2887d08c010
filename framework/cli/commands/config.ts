import type { CommandSpec } from '../../plugins/command-spec.js';
import { loadConfig, dumpConfig } from '../../config/index.js';
import { loadConfigPlugins, validateRunConfig } from '../../runner/run-config.js';

const collect = (v: string, prev: string[]) => [...prev, v];

/** `rass config show FILE [--set k=v ...] [--origins] [--json]`: the resolved config (defaults applied). */
export const configCommand: CommandSpec = {
  name: 'config',
  summary: 'show a resolved config: `rass config show FILE [--set k=v]... [--origins] [--json]`',
  configure(cmd, ctx) {
    cmd
      .command('show')
      .description('print the config after extends, --set overrides, interpolation and schema defaults')
      .argument('<file>', 'config file')
      .option('--set <path=value>', 'override a value (YAML); repeatable', collect, [])
      .option('--origins', 'annotate every value with the file:line:col (or --set #n) it came from')
      .option('--json', 'print JSON')
      .option('--no-validate', 'skip schema validation (no defaults filled in)')
      .action(async (file: string, opts: { set: string[]; origins?: boolean; json?: boolean; validate: boolean }) => {
        const cfg = await loadConfig(file, { sets: opts.set, cwd: ctx.cwd });
        if (opts.validate) {
          await loadConfigPlugins(cfg, ctx.registry);
          validateRunConfig(cfg, ctx.registry);
        }
        ctx.stdout.write(opts.json ? JSON.stringify(cfg.value, null, 2) + '\n' : dumpConfig(cfg, { origins: opts.origins }));
      });
  },
};
