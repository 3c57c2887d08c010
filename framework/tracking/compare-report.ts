/**
 * `rass report --runs A B C ...`: one page comparing runs -- the figure researchers otherwise
 * assemble by hand. A metric table (runs that differ only by their seed are one row: mean and
 * standard deviation over the seeds) and the runs' image artifacts side by side, one column per
 * run, so the same validation images line up in rows. Markdown plus one self-contained HTML page
 * (images inlined as data URIs, so the page can be mailed or attached to a paper draft).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { parse } from 'yaml';
import { UserError } from '../errors.js';
import { summarizeRun, type RunSummary } from './run-store.js';

export interface CompareReport {
  markdown: string;
  html: string;
}

interface Group {
  /** what the runs in the group share (the config without seed, name and run-store keys) */
  key: string;
  label: string;
  runs: RunSummary[];
}

const fmt = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : Number(v.toPrecision(4)).toString());
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const lowerIsBetter = (m: string) => /loss|error|niqe|lpips|dists|fid/i.test(m);

/** A run's config without what does not change the computation (seed, names, where it is stored). */
function groupKey(dir: string): string {
  const file = join(dir, 'config.yaml');
  if (!existsSync(file)) return dir;
  const { seed: _s, name: _n, runs_dir: _r, tracking: _t, tags: _g, ...rest } = (parse(readFileSync(file, 'utf8')) ?? {}) as Record<string, unknown>;
  return JSON.stringify(rest);
}

/** Final metrics worth comparing: scalars without a per-class or per-layer `/` suffix beyond one level. */
function headline(s: RunSummary): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, m] of Object.entries(s.metrics)) if (k.split('/').length <= 2 && !/^(lr|grad_norm)$/.test(k) && !k.startsWith('loss')) out[k] = m.value;
  return out;
}

function stats(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std };
}

/** Image artifacts of a run, by path (PNG files under artifacts/images/). */
function images(s: RunSummary): string[] {
  return s.artifacts.map((a) => a.path).filter((p) => p.startsWith('images/') && p.endsWith('.png')).sort();
}

export function buildCompareReport(dirs: readonly string[], outDir: string): CompareReport {
  if (dirs.length < 2) throw new UserError('rass report --runs: name at least two runs to compare');
  const summaries = dirs.map((d) => summarizeRun(d));
  for (const s of summaries) if (s.status !== 'FINISHED') throw new UserError(`rass report --runs: run ${s.runId} is ${s.displayStatus}; compare finished runs`);
  const groups: Group[] = [];
  for (const s of summaries) {
    const key = groupKey(s.dir);
    let g = groups.find((x) => x.key === key);
    if (!g) groups.push((g = { key, label: s.name || s.runId, runs: [] }));
    g.runs.push(s);
  }
  for (const g of groups) if (g.runs.length > 1) g.label = `${g.label} (${g.runs.length} seeds)`;
  const metrics = [...new Set(summaries.flatMap((s) => Object.keys(headline(s))))].sort();
  const cell = (g: Group, m: string): { text: string; mean?: number } => {
    const xs = g.runs.map((r) => headline(r)[m]).filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (!xs.length) return { text: '' };
    const { mean, std } = stats(xs);
    return { text: xs.length > 1 ? `${fmt(mean)} ± ${fmt(std)}` : fmt(mean), mean };
  };
  const best = new Map<string, number>();
  for (const m of metrics) {
    const means = groups.map((g) => cell(g, m).mean).filter((v): v is number => v !== undefined);
    if (means.length > 1) best.set(m, lowerIsBetter(m) ? Math.min(...means) : Math.max(...means));
  }
  const mark = (m: string, c: { text: string; mean?: number }) => (c.mean !== undefined && best.get(m) === c.mean ? `**${c.text}**` : c.text);

  // markdown
  const md: string[] = [`# Run comparison`, '', `Runs: ${summaries.map((s) => `\`${s.runId}\``).join(', ')}. Runs that differ only by seed are one column (mean ± std); the best mean per metric is bold (lower is better for losses, NIQE, LPIPS, DISTS).`, ''];
  md.push(`| metric | ${groups.map((g) => g.label).join(' | ')} |`, `|---|${groups.map(() => '---').join('|')}|`);
  for (const m of metrics) md.push(`| ${m} | ${groups.map((g) => mark(m, cell(g, m))).join(' | ')} |`);
  md.push('', '## Images', '', 'One column per run (the first run of each group); rows inside each picture are the same validation images for every run.', '');
  const imageNames = [...new Set(summaries.flatMap(images))];
  for (const name of imageNames) {
    md.push(`### ${name}`, '', `| ${groups.map((g) => g.label).join(' | ')} |`, `|${groups.map(() => '---').join('|')}|`);
    md.push(`| ${groups.map((g) => (images(g.runs[0] as RunSummary).includes(name) ? `![${esc(g.label)}](${relative(outDir, join((g.runs[0] as RunSummary).dir, 'artifacts', name))})` : '')).join(' | ')} |`, '');
  }
  md.push('## Runs', '', ...summaries.map((s) => `- [${s.runId}](${relative(outDir, s.dir)}) ${s.name} (${s.experiment})`), '');

  // html
  const h: string[] = ['<!doctype html><html><head><meta charset="utf-8"><title>Run comparison</title>', '<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}td.best{font-weight:bold;background:#eef7ee}img{image-rendering:pixelated;width:100%;min-width:160px}</style></head><body>'];
  h.push('<h1>Run comparison</h1>', `<p>${summaries.length} runs in ${groups.length} groups; runs that differ only by seed are one column (mean ± std). Best mean per metric highlighted.</p>`);
  h.push('<table id="metrics"><thead><tr><th>metric</th>', ...groups.map((g) => `<th>${esc(g.label)}</th>`), '</tr></thead><tbody>');
  for (const m of metrics) {
    h.push(`<tr><td>${esc(m)}</td>`, ...groups.map((g) => {
      const c = cell(g, m);
      return `<td${c.mean !== undefined && best.get(m) === c.mean ? ' class="best"' : ''}>${esc(c.text)}</td>`;
    }), '</tr>');
  }
  h.push('</tbody></table>');
  for (const name of imageNames) {
    h.push(`<h2>${esc(name)}</h2><table class="images"><tr>`, ...groups.map((g) => `<th>${esc(g.label)}</th>`), '</tr><tr>');
    for (const g of groups) {
      const s = g.runs[0] as RunSummary;
      const f = join(s.dir, 'artifacts', name);
      h.push(existsSync(f) ? `<td><img alt="${esc(`${g.label}: ${name}`)}" src="data:image/png;base64,${readFileSync(f).toString('base64')}"></td>` : '<td></td>');
    }
    h.push('</tr></table>');
  }
  h.push('<h2>Runs</h2><ul>', ...summaries.map((s) => `<li><a href="${esc(relative(outDir, s.dir))}">${esc(s.runId)}</a> ${esc(s.name)} (${esc(s.experiment)})</li>`), '</ul></body></html>');
  return { markdown: md.join('\n'), html: h.join('\n') };
}

export const compareReportName = (dirs: readonly string[]): string => `compare-${dirs.map((d) => basename(d).slice(-6)).join('-')}`;
