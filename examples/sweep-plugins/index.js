// Example third-party plugins of the two kinds that do not compute: where runs are mirrored
// (tracker) and where sweep trials run (executor). Contracts: framework/contracts/tracker.ts
// and framework/contracts/executor.ts. Load with `plugins: [path/to/examples/sweep-plugins]`.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, openSync, readFileSync, renameSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';

/** Every metric point of a run's journal (journal.jsonl, one JSON event per line), in journal order. */
function metricRows(runDir) {
  const file = join(runDir, 'journal.jsonl');
  if (!existsSync(file)) return [];
  const rows = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      continue; // the torn last line of a journal being written
    }
    if (ev.type !== 'metrics') continue;
    // the journal stores NaN/Infinity as null
    for (const [key, value] of Object.entries(ev.values)) rows.push([ev.step, key, value === null ? 'NaN' : String(value)]);
  }
  return rows;
}

/** @param {typeof import('rass')} rass */
export default (rass) => {
  // tracker/csv: mirrors a run's metrics into <run dir>/<file> as step,key,value rows. The
  // journal is the source of truth; this rewrites the whole file from it on flush and close.
  const csvTracker = rass.definePlugin({
    kind: 'tracker',
    name: 'csv',
    version: '0.1.0',
    description: 'mirror a run\'s metrics to a CSV file in its run directory (step,key,value)',
    schema: {
      type: 'object',
      additionalProperties: false,
      properties: { file: { type: 'string', pattern: '^[A-Za-z0-9._-]+\\.csv$', default: 'metrics.csv' } },
    },
    create(options) {
      return {
        async start(run) {
          const write = () => {
            const target = join(run.dir, options.file);
            const text = ['step,key,value', ...metricRows(run.dir).map((r) => r.join(','))].join('\n') + '\n';
            writeFileSync(`${target}.tmp`, text);
            renameSync(`${target}.tmp`, target);
          };
          return {
            name: 'csv',
            onAppend() {},
            async flush() {
              write();
            },
            async close() {
              write();
            },
          };
        },
      };
    },
  });

  // executor/serial: one trial at a time, each in a fresh process of the sweep's own CLI
  // (ctx.cli), its output appended to the trial's log.
  const serialExecutor = rass.definePlugin({
    kind: 'executor',
    name: 'serial',
    version: '0.1.0',
    description: 'run sweep trials one after another, each as a fresh `rass run` process',
    schema: { type: 'object', additionalProperties: false, properties: {} },
    create() {
      let child;
      return {
        get running() {
          return child ? 1 : 0;
        },
        stop(signal) {
          child?.kill(signal);
        },
        async run(trials, ctx) {
          for (const t of trials) {
            if (ctx.stopping()) return;
            ctx.started(t);
            appendFileSync(t.logFile, `=== executor/serial: trial ${t.id} runs ${ctx.cli.command} ${[...ctx.cli.args, ...t.argv].join(' ')}\n`);
            const fd = openSync(t.logFile, 'a');
            const end = await new Promise((resolve) => {
              child = spawn(ctx.cli.command, [...ctx.cli.args, ...t.argv], { cwd: ctx.cwd, env: ctx.env, stdio: ['ignore', fd, fd] });
              child.on('error', (e) => resolve({ exitCode: null, crashed: true, error: e.message }));
              child.on('exit', (code, signal) => resolve({ exitCode: code, signal, crashed: signal !== null }));
            });
            child = undefined;
            closeSync(fd);
            await ctx.ended(t, end);
          }
        },
      };
    },
  });

  return rass.pluginPackage({ name: 'rass-example-sweep-plugins', plugins: [csvTracker, serialExecutor] });
};
