/**
 * Reads an MLflow run back through the REST API and compares it with the journal it mirrors:
 * params, every metric point (step, timestamp, value; each step once), tags, artifacts byte
 * for byte, and the final status.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MlflowClient } from '../../../framework/tracking/mlflow/client.js';
import type { JournalEvent } from '../../../framework/tracking/events.js';

/** A local run as the assertions need it (TestRun, or a journal read back). */
export interface MirroredRun {
  dir: string;
  runId: string;
  events: JournalEvent[];
}

/**
 * The points the mirror must hold: each step of a metric once, the last journaled value (a
 * resumed run re-does steps; the later attempt's value replaces the earlier one).
 */
function metricPoints(events: JournalEvent[]): Map<string, Array<{ step: number; timestamp: number; value: number }>> {
  const m = new Map<string, Map<number, { step: number; timestamp: number; value: number }>>();
  for (const e of events) {
    if (e.type !== 'metrics') continue;
    for (const [k, v] of Object.entries(e.values)) {
      if (!m.has(k)) m.set(k, new Map());
      m.get(k)!.set(e.step, { step: e.step, timestamp: e.t, value: v });
    }
  }
  return new Map([...m].map(([k, steps]) => [k, [...steps.values()]]));
}

export async function assertMirrors(client: MlflowClient, run: MirroredRun, mlflowRunId: string, opts: { truncatedParams?: string[] } = {}): Promise<void> {
  const remote = await client.getRun(mlflowRunId);
  const params = new Map((remote.data.params ?? []).map((p) => [p.key, p.value]));
  const tags = new Map((remote.data.tags ?? []).map((p) => [p.key, p.value]));
  for (const e of run.events) {
    if (e.type === 'params') {
      for (const [k, v] of Object.entries(e.params)) {
        if (opts.truncatedParams?.includes(k)) continue;
        assert.equal(params.get(k), v, `param ${k}`);
      }
    }
    if (e.type === 'tags') for (const [k, v] of Object.entries(e.tags)) assert.equal(tags.get(k), v, `tag ${k}`);
  }
  assert.equal(tags.get('rass.run_id'), run.runId);
  const points = metricPoints(run.events);
  // Single-point metrics (the 1500-wide step) are checked through the run's latest values in
  // one request, plus a history sample; multi-point metrics through their full history.
  const latest = new Map((remote.data.metrics ?? []).map((m) => [m.key, m]));
  let sampled = 0;
  for (const [key, expected] of points) {
    const l = latest.get(key);
    assert.ok(l, `metric ${key} on the server`);
    if (expected.length === 1) {
      assert.deepEqual({ step: Number(l.step), timestamp: Number(l.timestamp), value: l.value }, expected[0], `metric ${key}`);
      if (sampled++ % 100 !== 0) continue;
    }
    const got = (await client.getMetricHistory(mlflowRunId, key)).map((m) => ({ step: Number(m.step), timestamp: Number(m.timestamp), value: m.value }));
    const order = (a: { step: number; timestamp: number }, b: { step: number; timestamp: number }) => a.step - b.step || a.timestamp - b.timestamp;
    assert.deepEqual(got.sort(order), [...expected].sort(order), `metric ${key}: every point exactly once with its step and timestamp`);
  }
  const statuses = run.events.filter((e) => e.type === 'status');
  const last = statuses[statuses.length - 1];
  if (last && last.type === 'status') {
    assert.equal(remote.info.status, last.status);
    if (last.status !== 'RUNNING') assert.equal(Number(remote.info.end_time), last.t);
  }
  for (const e of run.events) {
    if (e.type !== 'artifact') continue;
    const remoteBytes = await client.downloadArtifact(remote.info.artifact_uri, e.path);
    const localBytes = readFileSync(join(run.dir, 'artifacts', ...e.path.split('/')));
    assert.ok(remoteBytes.equals(localBytes), `artifact ${e.path} byte for byte (${remoteBytes.length} vs ${localBytes.length} bytes)`);
  }
}
