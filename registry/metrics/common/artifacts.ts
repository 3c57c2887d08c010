/**
 * Writing metric results to disk: per-class tables as CSV + JSON, and the optional per-image
 * CSV (file, metric values) next to the aggregate JSON. Used by evaluation.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { MetricResult, MetricTable, PerSampleRecord } from '../../../framework/api.js';

function csvCell(v: string | number): string {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

export function toCsv(columns: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  return [columns, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
}

/** Merge per-sample records of several metrics by sample id, keeping first-seen order. */
export function joinPerSample(results: readonly MetricResult[]): PerSampleRecord[] {
  const byId = new Map<string, Record<string, number>>();
  for (const r of results) {
    for (const rec of r.perSample ?? []) {
      const row = byId.get(rec.id) ?? {};
      Object.assign(row, rec.values);
      byId.set(rec.id, row);
    }
  }
  return [...byId].map(([id, values]) => ({ id, values }));
}

/** Write `<aggregate without .json>.per-image.csv` beside the aggregate file; returns its path. */
export function writePerSampleCsv(aggregateJsonPath: string, records: readonly PerSampleRecord[]): string {
  const cols = [...new Set(records.flatMap((r) => Object.keys(r.values)))];
  const rows = records.map((r) => [r.id, ...cols.map((c) => r.values[c] ?? NaN)]);
  const out = aggregateJsonPath.replace(/\.json$/, '') + '.per-image.csv';
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, toCsv(['file', ...cols], rows));
  return out;
}

/** Write each table as `<dir>/<prefix><table>.csv` and `.json`; returns the written paths. */
export function writeTables(dir: string, tables: readonly MetricTable[], prefix = ''): string[] {
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (const t of tables) {
    const base = join(dir, `${prefix}${t.name}`);
    writeFileSync(`${base}.csv`, toCsv(t.columns, t.rows));
    const objs = t.rows.map((r) => Object.fromEntries(t.columns.map((c, i) => [c, typeof r[i] === 'number' && !Number.isFinite(r[i]) ? String(r[i]) : r[i]])));
    writeFileSync(`${base}.json`, JSON.stringify(objs, null, 2) + '\n');
    paths.push(`${base}.csv`, `${base}.json`);
  }
  return paths;
}
