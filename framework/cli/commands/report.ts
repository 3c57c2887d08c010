/** `rass report SWEEP [--runs-dir D]`: Markdown + self-contained HTML report of a sweep, logged as artifacts of its parent run. */
import type { CommandSpec } from '../command.js';
import { resolve } from 'node:path';
import { resolveRunDir, summarizeRun } from '../../tracking/run-store.js';
import { LocalRun } from '../../tracking/local-run.js';
import { buildSweepReport } from '../../sweep/report.js';

export const reportCommand: CommandSpec = {
  name: 'report',
  summary: 'write report.md and report.html (trials x metrics, one chart per ablation axis) for a sweep\'s parent run',
  configure(cmd, ctx) {
    cmd
      .argument('<sweep>', 'the sweep\'s parent run: id, id prefix or directory')
      .option('--runs-dir <dir>', 'run store', 'runs')
      .action(async (sel: string, opts: { runsDir: string }) => {
        const dir = resolveRunDir(resolve(ctx.cwd, opts.runsDir), sel, ctx.cwd);
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
