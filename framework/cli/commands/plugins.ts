import type { CommandSpec } from '../../plugins/command-spec.js';
import { isPluginKind, PLUGIN_KINDS } from '../../plugins/kinds.js';
import { UserError, didYouMean } from '../../errors.js';
import { formatTable } from '../../output/table.js';
import { describeSchema } from '../schema-doc.js';

export const pluginsCommand: CommandSpec = {
  name: 'plugins',
  summary: 'list plugins (optionally of one kind), or `plugins show KIND/NAME` for one plugin\'s options and docs',
  configure(cmd, ctx) {
    cmd
      .argument('[kind-or-show]', `a kind (${PLUGIN_KINDS.join(', ')}) or "show"`)
      .argument('[type]', 'with "show": the plugin as KIND/NAME')
      .option('--json', 'print JSON instead of a table')
      .action((first: string | undefined, second: string | undefined, opts: { json?: boolean }) => {
        if (first === 'show') {
          if (!second) throw new UserError('usage: rass plugins show KIND/NAME');
          const p = ctx.registry.resolveType(second);
          if (opts.json) {
            ctx.stdout.write(JSON.stringify({ kind: p.kind, name: p.name, version: p.version, source: ctx.registry.sourceOf(p), description: p.description, schema: p.schema }, null, 2) + '\n');
            return;
          }
          const lines = [
            `${p.kind}/${p.name}  v${p.version}  (from ${ctx.registry.sourceOf(p)})`,
            '',
            p.description,
            '',
            'Options:',
            describeSchema(p.schema, '  ') || '  (none)',
          ];
          if (p.docs) lines.push('', p.docs.trim());
          ctx.stdout.write(lines.join('\n') + '\n');
          return;
        }
        if (first !== undefined && !isPluginKind(first)) {
          throw new UserError(`unknown plugin kind "${first}"${didYouMean(first, PLUGIN_KINDS)}; kinds are ${PLUGIN_KINDS.join(', ')}`);
        }
        const plugins = ctx.registry.list(first);
        if (opts.json) {
          ctx.stdout.write(JSON.stringify(plugins.map((p) => ({ type: `${p.kind}/${p.name}`, version: p.version, source: ctx.registry.sourceOf(p), description: p.description })), null, 2) + '\n');
          return;
        }
        ctx.stdout.write(formatTable(['type', 'version', 'source', 'description'], plugins.map((p) => [`${p.kind}/${p.name}`, p.version, ctx.registry.sourceOf(p), p.description])) + '\n');
      });
  },
};
