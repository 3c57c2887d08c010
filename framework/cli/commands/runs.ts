/**
 * `rass runs list | show RUN | compare RUN RUN... | sync`: the local run store, read back
 * from each run's journal. RUN is a run id, a unique id prefix, or a run directory.
 */
import { resolve } from 'node:path';
import type { CommandSpec } from '../../plugins/command-spec.js';
import { UserError } from '../../errors.js';
import { formatTable } from '../../output/table.js';
import { findRunDirs, formatDuration, formatMetric, resolveRunDir, summarizeRun, type RunSummary } from '../../tracking/run-store.js';
import { addRunsSyncCommand } from './runs-sync.js';

const time = (t: number | undefined) => (t === undefined ? '' : new Date(t).toISOString().replace('T', ' ').slice(0, 19));

function lastMetricsText(s: RunSummary, max = 3): string {
  return Object.entries(s.metrics)
    .sort(([a], [b]) => a.localeCompare(b))
    .slice(0, max)
    .map(([k, m]) => `${k}=${formatMetric(m.value)}`)
    .join(' ');
}

function tornWarning(s: RunSummary): string[] {
  const out: string[] = [];
  if (s.torn) out.push(`warning: ${s.dir}/journal.jsonl:${s.torn.line}: torn last line (${s.torn.bytes} bytes; the writer was killed mid-write): ${JSON.stringify(s.torn.text.slice(0, 80))}`);
  for (const e of s.errors) out.push(`warning: ${e}`);
  return out;
}

export const runsCommand: CommandSpec = {
  name: 'runs',
  summary: 'list, show and compare recorded runs (and sync them to MLflow)',
  configure(cmd, ctx) {
    const root = (dir: string) => resolve(ctx.cwd, dir);

    cmd
      .command('list')
      .description('table of runs: id, experiment, name, status, start, duration, last metrics')
      .option('--experiment <name>', 'only this experiment')
      .option('--runs-dir <dir>', 'local run store', 'runs')
      .option('--json', 'print JSON')
      .exitOverride()
      .action((opts: { experiment?: string; runsDir: string; json?: boolean }) => {
        const runs = findRunDirs(root(opts.runsDir)).map(summarizeRun).filter((s) => !opts.experiment || s.experiment === opts.experiment);
        if (opts.json) {
          ctx.stdout.write(JSON.stringify(runs, null, 2) + '\n');
          return;
        }
        if (runs.length === 0) {
          ctx.stdout.write(`no runs in ${root(opts.runsDir)}${opts.experiment ? ` for experiment ${opts.experiment}` : ''}\n`);
          return;
        }
        const rows = runs.map((s) => [s.runId, s.experiment, s.name, s.displayStatus + (s.torn ? ' (torn journal)' : ''), time(s.start), formatDuration(s.durationMs), lastMetricsText(s)]);
        ctx.stdout.write(formatTable(['run', 'experiment', 'name', 'status', 'start (UTC)', 'duration', 'last metrics'], rows) + '\n');
      });

    cmd
      .command('show')
      .description('one run: status, params, last metrics, tags, artifacts')
      .argument('<run>', 'run id, id prefix or directory')
      .option('--runs-dir <dir>', 'local run store', 'runs')
      .exitOverride()
      .action((sel: string, opts: { runsDir: string }) => {
        const s = summarizeRun(resolveRunDir(root(opts.runsDir), sel, ctx.cwd));
        const out: string[] = [];
        out.push(`run        ${s.runId}`, `experiment ${s.experiment}`, `name       ${s.name}`, `status     ${s.displayStatus}${s.statusMessage ? ` (${s.statusMessage})` : ''}`);
        out.push(`dir        ${s.dir}`, `start      ${time(s.start)}`, `duration   ${formatDuration(s.durationMs)}${s.attempts.length > 1 ? ` (running time of ${s.attempts.length} attempts: ${s.attempts.map((a) => formatDuration(a.end - a.start)).join(' + ')})` : ''}`, `events     ${s.events}`);
        out.push('', 'params:', formatTable(['key', 'value'], Object.entries(s.params).sort(([a], [b]) => a.localeCompare(b))));
        out.push('', 'last metrics:', formatTable(['metric', 'value', 'step'], Object.entries(s.metrics).sort(([a], [b]) => a.localeCompare(b)).map(([k, m]) => [k, formatMetric(m.value), m.step])));
        out.push('', 'tags:', formatTable(['tag', 'value'], Object.entries(s.tags).sort(([a], [b]) => a.localeCompare(b))));
        out.push('', 'artifacts:', formatTable(['path', 'bytes', 'sha256'], s.artifacts.map((a) => [a.path, a.size, a.sha256.slice(0, 16)])));
        ctx.stdout.write(out.join('\n') + '\n');
        for (const w of tornWarning(s)) ctx.stderr.write(w + '\n');
      });

    cmd
      .command('compare')
      .description('params and tags that differ, and final metrics, side by side')
      .argument('<runs...>', 'two or more runs (id, id prefix or directory)')
      .option('--runs-dir <dir>', 'local run store', 'runs')
      .option('--all', 'show every param, not only those that differ')
      .exitOverride()
      .action((sels: string[], opts: { runsDir: string; all?: boolean }) => {
        if (sels.length < 2) throw new UserError('rass runs compare: give at least two runs');
        const runs = sels.map((sel) => summarizeRun(resolveRunDir(root(opts.runsDir), sel, ctx.cwd)));
        const head = ['', ...runs.map((s) => s.runId)];
        const keys = [...new Set(runs.flatMap((s) => Object.keys(s.params)))].sort();
        const differ = keys.filter((k) => opts.all || new Set(runs.map((s) => s.params[k] ?? '')).size > 1);
        const out: string[] = [];
        out.push(formatTable(head, [['status', ...runs.map((s) => s.displayStatus)], ['name', ...runs.map((s) => s.name)], ['duration', ...runs.map((s) => formatDuration(s.durationMs))], ['attempts', ...runs.map((s) => String(s.attempts.length))]]));
        out.push('', differ.length ? `params${opts.all ? '' : ' that differ'}:` : 'params: identical');
        if (differ.length) out.push(formatTable(head, differ.map((k) => [k, ...runs.map((s) => s.params[k] ?? '(unset)')])));
        // tags that differ say how the runs were made (backend, host, attempts, git commit)
        const tkeys = [...new Set(runs.flatMap((s) => Object.keys(s.tags)))].sort();
        const tdiffer = tkeys.filter((k) => opts.all || new Set(runs.map((s) => s.tags[k] ?? '')).size > 1);
        out.push('', tdiffer.length ? `tags${opts.all ? '' : ' that differ'}:` : 'tags: identical');
        if (tdiffer.length) out.push(formatTable(head, tdiffer.map((k) => [k, ...runs.map((s) => s.tags[k] ?? '(unset)')])));
        const mkeys = [...new Set(runs.flatMap((s) => Object.keys(s.metrics)))].sort();
        out.push('', 'final metrics:', formatTable(head, mkeys.map((k) => [k, ...runs.map((s) => (s.metrics[k] ? formatMetric(s.metrics[k].value) : ''))])));
        ctx.stdout.write(out.join('\n') + '\n');
        for (const s of runs) for (const w of tornWarning(s)) ctx.stderr.write(w + '\n');
      });

    addRunsSyncCommand(cmd, ctx);
  },
};
