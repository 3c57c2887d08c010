/**
 * Sweep reports: a trials x metrics table (best value per column marked) and one chart per
 * ablation axis (the chosen metric against the axis value, mean and spread over the other
 * axes and repeats), as Markdown and as one self-contained HTML page with inline SVG.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { UserError } from '../errors.js';
import { summarizeRun } from '../tracking/run-store.js';
import type { TrialRecord } from './trial-record.js';

export interface SweepReport {
  markdown: string;
  html: string;
}

interface Row {
  id: string;
  state: string;
  labels: Record<string, string>;
  metrics: Record<string, number>;
  dir: string;
}

const lowerIsBetter = (m: string) => /loss|error|err\b|niqe|lpips|dists|fid/i.test(m);
const fmt = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '' : Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : Number(v.toPrecision(4)).toString());
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function loadRows(parentDir: string): { rows: Row[]; spec: { name?: string; metric?: { name: string; goal?: 'max' | 'min' } } } {
  const trialsFile = join(parentDir, 'artifacts', 'trials.json');
  if (!existsSync(trialsFile)) throw new UserError(`${parentDir}: no artifacts/trials.json (is this a sweep's parent run? has it run?)`);
  const trials = JSON.parse(readFileSync(trialsFile, 'utf8')) as (Omit<TrialRecord, 'dir' | 'experiment'> & { dir?: string; experiment?: string })[];
  const parent = summarizeRun(parentDir);
  const specParam = Object.fromEntries(Object.entries(parent.params).filter(([k]) => k.startsWith('sweep.metric.')).map(([k, v]) => [k.slice('sweep.metric.'.length), v]));
  const spec = { name: parent.experiment, metric: specParam.name ? { name: specParam.name, goal: (specParam.goal as 'max' | 'min' | undefined) } : undefined };
  // the trial runs live beside the parent's experiment folder: <runs>/<experiment>/<runId>
  const runsRoot = join(parentDir, '..', '..');
  const rows = trials.map((t) => {
    // trials.json names each trial's experiment (older sweeps: the parent's tag)
    const found = [join(runsRoot, t.experiment ?? parent.tags['rass.sweep.experiment'] ?? '', t.runId)].find((d) => existsSync(join(d, 'journal.jsonl')));
    let metrics = t.metrics;
    let state: string = t.state;
    if (found) {
      const s = summarizeRun(found);
      metrics = Object.fromEntries(Object.entries(s.metrics).map(([k, v]) => [k, v.value]));
      state = s.status;
    }
    return { id: t.id, state, labels: t.labels, metrics, dir: found ?? '' };
  });
  return { rows, spec };
}

/** Mean and standard deviation of the metric for each value of an axis. */
function axisStats(rows: Row[], axis: string, metric: string): { value: string; mean: number; std: number; n: number }[] {
  const groups = new Map<string, number[]>();
  for (const r of rows) {
    const v = r.labels[axis];
    const m = r.metrics[metric];
    if (v === undefined || m === undefined || !Number.isFinite(m)) continue;
    groups.set(v, [...(groups.get(v) ?? []), m]);
  }
  return [...groups].map(([value, xs]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
    return { value, mean, std, n: xs.length };
  });
}

/** A bar chart with spread whiskers, as a standalone <svg> element. */
function barChart(title: string, metric: string, stats: { value: string; mean: number; std: number; n: number }[]): string {
  const W = 420;
  const H = 240;
  const pad = { l: 56, r: 12, t: 28, b: 44 };
  const hi = Math.max(...stats.map((s) => s.mean + s.std), 0);
  const lo = Math.min(...stats.map((s) => s.mean - s.std), 0);
  const span = hi - lo || 1;
  const y = (v: number) => pad.t + (H - pad.t - pad.b) * (1 - (v - lo) / span);
  const bw = (W - pad.l - pad.r) / Math.max(1, stats.length);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(`${metric} by ${title}`)}">`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-family="sans-serif">${esc(`${metric} by ${title}`)}</text>`,
    `<line x1="${pad.l}" y1="${y(lo)}" x2="${W - pad.r}" y2="${y(lo)}" stroke="#444"/>`,
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#444"/>`,
  ];
  for (const t of [lo, (lo + hi) / 2, hi]) parts.push(`<text x="${pad.l - 6}" y="${y(t) + 4}" text-anchor="end" font-size="10" font-family="sans-serif">${esc(fmt(t))}</text>`);
  stats.forEach((s, i) => {
    const x = pad.l + i * bw + bw * 0.2;
    const w = bw * 0.6;
    const top = y(Math.max(s.mean, 0));
    const h = Math.abs(y(s.mean) - y(0));
    parts.push(`<rect class="bar" x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${w.toFixed(1)}" height="${Math.max(1, h).toFixed(1)}" fill="#4a7bd0"><title>${esc(`${s.value}: ${fmt(s.mean)} +- ${fmt(s.std)} (n=${s.n})`)}</title></rect>`);
    if (s.std > 0) {
      const cx = x + w / 2;
      parts.push(`<line x1="${cx}" y1="${y(s.mean - s.std)}" x2="${cx}" y2="${y(s.mean + s.std)}" stroke="#111"/>`);
    }
    parts.push(`<text x="${(x + w / 2).toFixed(1)}" y="${H - pad.b + 14}" text-anchor="middle" font-size="10" font-family="sans-serif">${esc(s.value)}</text>`);
  });
  parts.push(`<text x="${W / 2}" y="${H - 6}" text-anchor="middle" font-size="11" font-family="sans-serif">${esc(title)}</text>`, '</svg>');
  return parts.join('');
}

/**
 * A trial's link in the reports: its run folder relative to where the reports are written
 * (the parent's artifacts/), with URL slashes.
 */
function trialHref(parentDir: string, r: Row): string {
  return r.dir ? relative(join(parentDir, 'artifacts'), r.dir).split(sep).join('/') : '';
}

export function buildSweepReport(parentDir: string): SweepReport {
  const { rows, spec } = loadRows(parentDir);
  const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort();
  const axes = [...new Set(rows.flatMap((r) => Object.keys(r.labels)))];
  const main = spec.metric?.name && metrics.includes(spec.metric.name) ? spec.metric.name : metrics[0];
  const goal = (m: string) => (m === spec.metric?.name && spec.metric.goal ? spec.metric.goal : lowerIsBetter(m) ? 'min' : 'max');
  const best: Record<string, number> = {};
  for (const m of metrics) {
    const vals = rows.map((r) => r.metrics[m]).filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (vals.length) best[m] = goal(m) === 'min' ? Math.min(...vals) : Math.max(...vals);
  }
  const cell = (r: Row, m: string) => {
    const v = r.metrics[m];
    return v !== undefined && v === best[m] ? { text: fmt(v), best: true } : { text: fmt(v), best: false };
  };
  const title = `Sweep ${spec.name ?? ''}`.trim();
  // repeats (seed) are spread, not an ablation axis: no chart of their own
  const chartAxes = axes.filter((a) => a !== 'seed' && new Set(rows.map((r) => r.labels[a])).size > 1);
  const charts = main ? chartAxes.map((a) => ({ axis: a, svg: barChart(a, main, axisStats(rows, a, main)) })) : [];

  const md: string[] = [`# ${title}`, '', `${rows.length} trials; best value per column in **bold** (${metrics.map((m) => `${m}: ${goal(m)}`).join(', ')}).`, ''];
  md.push(`| trial | state | ${axes.join(' | ')} | ${metrics.join(' | ')} |`, `|${'---|'.repeat(2 + axes.length + metrics.length)}`);
  for (const r of rows) {
    md.push(`| ${r.dir ? `[${r.id}](${trialHref(parentDir, r)})` : r.id} | ${r.state} | ${axes.map((a) => r.labels[a] ?? '').join(' | ')} | ${metrics.map((m) => { const c = cell(r, m); return c.best ? `**${c.text}**` : c.text; }).join(' | ')} |`);
  }
  if (main) {
    md.push('', `## ${main} by ablation axis (mean, +- standard deviation over the other axes and repeats)`, '');
    for (const a of chartAxes) {
      md.push(`### ${a}`, '', `| ${a} | mean | std | n |`, '|---|---|---|---|');
      for (const s of axisStats(rows, a, main)) md.push(`| ${s.value} | ${fmt(s.mean)} | ${fmt(s.std)} | ${s.n} |`);
      md.push('');
    }
  }

  const th = (s: string) => `<th>${esc(s)}</th>`;
  const html = [
    '<!doctype html>',
    `<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>`,
    '<style>body{font-family:sans-serif;margin:24px;color:#111}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td.id,th{text-align:left}td.best{font-weight:bold;background:#e6f0ff}.charts{display:flex;flex-wrap:wrap;gap:16px}</style>',
    '</head><body>',
    `<h1>${esc(title)}</h1>`,
    `<p>${rows.length} trials; the best value of each metric column is highlighted.</p>`,
    '<table id="trials"><thead><tr>' + [th('trial'), th('state'), ...axes.map(th), ...metrics.map(th)].join('') + '</tr></thead><tbody>',
    ...rows.map((r) => '<tr>' + [`<td class="id">${r.dir ? `<a href="${esc(trialHref(parentDir, r))}">${esc(r.id)}</a>` : esc(r.id)}</td>`, `<td class="id">${esc(r.state)}</td>`, ...axes.map((a) => `<td class="id">${esc(r.labels[a] ?? '')}</td>`), ...metrics.map((m) => { const c = cell(r, m); return `<td${c.best ? ' class="best"' : ''}>${esc(c.text)}</td>`; })].join('') + '</tr>'),
    '</tbody></table>',
    main ? `<h2>${esc(main)} by ablation axis</h2><div class="charts">${charts.map((c) => c.svg).join('')}</div>` : '',
    '</body></html>',
  ].join('\n');
  return { markdown: md.join('\n') + '\n', html: html + '\n' };
}
