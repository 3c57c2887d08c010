/**
 * `rass report SWEEP [--runs-dir D]`: Markdown + self-contained HTML report of a sweep, logged as
 * artifacts of its parent run. `rass report --runs A B C [--out DIR]`: one page comparing runs.
 */
import type { CommandSpec } from '../../plugins/command-spec.js';
import { basename, join, resolve } from 'node:path';
import { existsSync, readdirSync } from 'node:fs';
import { UserError, isUserError } from '../../errors.js';
import { resolveRunDir, summarizeRun } from '../../tracking/run-store.js';
import { finishedRun } from '../../tracking/run-reference.js';
import { LocalRun } from '../../tracking/local-run.js';
import { buildSweepReport } from '../../sweep/report.js';
import { buildCompareReport, compareReportName } from '../../tracking/compare-report.js';
import { mkdirSync, writeFileSync } from 'node:fs';

/**
 * The parent run of the sweep named `name`: sweeps keep their parent runs in
 * `<runs>/<sweep name>/`, one per distinct spec; the latest (run ids sort by time) wins.
 */
function sweepParentByName(root: string, name: string): string | undefined {
  const dir = join(root, name);
  if (!existsSync(dir)) return undefined;
  const parents = readdirSync(dir)
    .map((d) => join(dir, d))
    .filter((d) => existsSync(join(d, 'artifacts', 'trials.json')))
    .sort((a, b) => (summarizeRun(a).start ?? 0) - (summarizeRun(b).start ?? 0) || basename(a).localeCompare(basename(b)));
  return parents.at(-1);
}

export const reportCommand: CommandSpec = {
  name: 'report',
  summary: 'write report.md and report.html (trials x metrics, one chart per ablation axis) for a sweep',
  configure(cmd, ctx) {
    cmd
      .argument('[sweep]', 'the sweep\'s name, or its parent run: id, id prefix or directory')
      .option('--runs-dir <dir>', 'run store', 'runs')
      .option('--runs <runs...>', 'compare these runs (ids, id prefixes, directories, latest:NAME) on one page instead')
      .option('--out <dir>', 'with --runs: where to write report.md / report.html (default: <runs-dir>/reports/compare-...)')
      .action(async (sel: string | undefined, opts: { runsDir: string; runs?: string[]; out?: string }) => {
        const root = resolve(ctx.cwd, opts.runsDir);
        if (opts.runs) {
          if (sel) throw new UserError('rass report: give a sweep or --runs, not both');
          const dirs = opts.runs.map((r) => finishedRun(r, { runsDir: root, cwd: ctx.cwd, where: `--runs ${r}` }).dir);
          const out = resolve(ctx.cwd, opts.out ?? join(root, 'reports', compareReportName(dirs)));
          const report = buildCompareReport(dirs, out);
          mkdirSync(out, { recursive: true });
          writeFileSync(join(out, 'report.md'), report.markdown);
          writeFileSync(join(out, 'report.html'), report.html);
          ctx.stdout.write(`${join(out, 'report.md')}\n${join(out, 'report.html')}\n`);
          return;
        }
        if (!sel) throw new UserError('rass report: name a sweep (its name or parent run), or compare runs with --runs A B ...');
        let dir: string;
        try {
          dir = resolveRunDir(root, sel, ctx.cwd);
        } catch (e) {
          if (!isUserError(e)) throw e;
          const byName = sweepParentByName(root, sel);
          if (!byName) throw new UserError(`rass report ${sel}: no sweep named "${sel}" (no ${join(root, sel)}/*/artifacts/trials.json) and ${(e as Error).message.replace(/^run /, 'no run ')}`);
          dir = byName;
        }
        const report = buildSweepReport(dir);
        const before = summarizeRun(dir);
        const run = LocalRun.reopen(dir, { warn: (m) => ctx.stderr.write(`[rass] warning: ${m}\n`) });
        run.logArtifact('report.md', report.markdown);
        run.logArtifact('report.html', report.html);
        await run.finalize(before.status === 'UNKNOWN' ? 'FINISHED' : before.status, 'report written');
        ctx.stdout.write(`${run.artifactPath('report.md')}\n${run.artifactPath('report.html')}\n`);
      });
  },
};
