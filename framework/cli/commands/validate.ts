import type { CommandSpec } from '../../plugins/command-spec.js';
import { loadConfig, ConfigError, isFragment, validateFragment, type ResolvedConfig } from '../../config/index.js';
import { loadConfigPlugins, validateRunConfig } from '../../runner/run-config.js';
import { UserError, isUserError } from '../../errors.js';
import { validatePipeline } from '../../runner/pipeline.js';
import { validatePipelineSweep } from '../../sweep/run-sweep.js';

const collect = (v: string, prev: string[]) => [...prev, v];

/** `rass validate FILE... [--set ...]`: check configs without running; every problem of every file is printed. */
export const validateCommand: CommandSpec = {
  name: 'validate',
  summary: 'check config files (extends, overrides, interpolation, plugin schemas) without running',
  configure(cmd, ctx) {
    cmd
      .argument('<files...>', 'config files')
      .option('--set <path=value>', 'override a value (YAML); repeatable', collect, [])
      .action(async (files: string[], opts: { set: string[] }) => {
        let bad = 0;
        for (const file of files) {
          try {
            // A fragment (a `_base_/` piece, a bare component node) is checked as the slot it
            // fills; unset ${env:...} paths in it are placeholders, since only a run supplies them.
            const needsEnv = new Set<string>();
            const asFragment = await loadConfig(file, { sets: opts.set, cwd: ctx.cwd, missingEnv: (name) => (needsEnv.add(name), `<${name}>`) });
            if (isFragment(asFragment)) {
              await loadConfigPlugins(asFragment, ctx.registry);
              const r = validateFragment(asFragment, ctx.registry, needsEnv);
              const env = r.needsEnv.length ? `; a run needs ${r.needsEnv.join(', ')} set` : '';
              ctx.stdout.write(`ok ${file} (fragment: ${r.role}; ${r.components} component${r.components === 1 ? '' : 's'} valid${env})\n`);
              continue;
            }
            // unset ${env:...} values (dataset roots, weight files) are placeholders here too:
            // the config is valid, and the message says what a run needs
            const cfg: ResolvedConfig = asFragment;
            await loadConfigPlugins(cfg, ctx.registry);
            const env = needsEnv.size ? ` (a run needs ${[...needsEnv].sort().join(', ')} set)` : '';
            if (Array.isArray((cfg.value as { stages?: unknown }).stages)) {
              const n = await validatePipeline(cfg, ctx.registry, { cwd: ctx.cwd, missingEnv: (name) => (needsEnv.add(name), `<${name}>`) });
              // a sweep over the pipeline: its axes must name real stages, and every trial's pipeline must be valid
              const trials = cfg.value.sweep === undefined ? 0 : await validatePipelineSweep(cfg, ctx.registry, ctx.cwd);
              ctx.stdout.write(`ok ${file} (pipeline of ${n} stages, each valid${trials ? `; sweep of ${trials} trials, each valid` : ''})${needsEnv.size ? ` (a run needs ${[...needsEnv].sort().join(', ')} set)` : ''}\n`);
              continue;
            }
            validateRunConfig(cfg, ctx.registry);
            ctx.stdout.write(`ok ${file}${env}\n`);
          } catch (e) {
            if (!isUserError(e)) throw e;
            bad++;
            const n = e instanceof ConfigError ? e.issues.length : 1;
            ctx.stderr.write(`FAIL ${file} (${n} problem${n === 1 ? '' : 's'})\n  ${(e as Error).message.split('\n').filter((l) => !/^\d+ problems in the config:$/.test(l)).map((l) => l.trim()).join('\n  ')}\n`);
          }
        }
        if (bad) throw new UserError(`${bad} of ${files.length} config file${files.length === 1 ? '' : 's'} invalid`);
      });
  },
};
