/**
 * A run killed at step 8 and resumed from its step-5 checkpoint journals steps 6-8 twice.
 * Every reader presents each step once, with the later attempt's value: the run summary
 * (`runs show`, `runs compare`, reports), the metric history, and the MLflow mirror of points
 * not yet uploaded. The duration is the running time of both attempts, not the hour between.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { metricHistory, summarizeRun } from '../../../framework/tracking/run-store.js';
import { syncRuns } from '../../../framework/tracking/sync.js';
import { MlflowClient } from '../../../framework/tracking/mlflow/client.js';
import { readState } from '../../../framework/tracking/mlflow/state.js';
import { type MlflowServer, mlflowSkipped, startMlflowServer } from '../../../scripts/mlflow/server.js';
import { runCliCaptured } from '../../helpers/cli.js';
import { TestRun, removeTempStores, tempStore } from './helpers.js';

const HOUR = 3_600_000;

/** attempt 1: steps 1-8 (loss 100+s), killed hard; an hour later attempt 2 redoes 6-10 (loss 200+s) and evaluates. */
function resumedRun(root: string): TestRun {
  const run = new TestRun(root, 'toy', 'resumed-a');
  run.append({ type: 'status', status: 'RUNNING' });
  run.append({ type: 'tags', tags: { 'rass.backend': 'wasm', 'rass.attempts': '1' } });
  for (let s = 1; s <= 8; s++) run.append({ type: 'metrics', step: s, values: { loss: 100 + s } });
  run.clock += HOUR;
  run.append({ type: 'status', status: 'RUNNING', message: 'resumed' });
  run.append({ type: 'tags', tags: { 'rass.backend': 'tensorflow', 'rass.attempts': '2' } });
  for (let s = 6; s <= 10; s++) run.append({ type: 'metrics', step: s, values: { loss: 200 + s } });
  run.append({ type: 'metrics', step: 10, values: { test_accuracy: 0.75 } });
  run.append({ type: 'status', status: 'FINISHED' });
  return run;
}

const expectedLoss = Array.from({ length: 10 }, (_, i) => ({ step: i + 1, value: i + 1 <= 5 ? 101 + i : 201 + i }));

describe('steps a resume re-did are presented once', () => {
  after(() => removeTempStores());

  it('summary, history and duration', async () => {
    const run = resumedRun(tempStore());
    const s = summarizeRun(run.dir);
    assert.deepEqual(s.metrics.loss, { value: 210, step: 10 });
    assert.deepEqual(metricHistory(run.events).loss.map(({ step, value }) => ({ step, value })), expectedLoss);
    assert.deepEqual(s.attempts.map((a) => a.status), [undefined, 'FINISHED']);
    // attempt 1: RUNNING .. its last metric (10 events later); attempt 2: RUNNING .. FINISHED (8 events later)
    assert.equal(s.durationMs, 9 + 8);
    assert.ok(s.last! - s.start! > HOUR);
    const show = await runCliCaptured(['runs', 'show', run.dir], [], run.dir);
    assert.match(show.out, /^duration\s+0\.0s \(running time of 2 attempts: 0\.0s \+ 0\.0s\)$/m);
    assert.match(show.out, /^loss\s+210\s+10$/m);
    assert.match(show.out, /rass\.backend\s+tensorflow/);
  });

  const skip = mlflowSkipped();
  it('the MLflow mirror uploads each step once, the later attempt\'s value', { skip }, async () => {
    const server: MlflowServer = await startMlflowServer();
    try {
      const root = tempStore();
      const run = resumedRun(root);
      const [r] = await syncRuns({ runsRoot: root, runs: [], uri: server.uri, env: {} }, root);
      assert.equal(r.outcome, 'uploaded', r.message);
      const client = new MlflowClient({ uri: server.uri });
      const history = await client.getMetricHistory(readState(run.dir).targets[server.uri].runId, 'loss');
      const points = history.map((m) => ({ step: Number(m.step), value: m.value })).sort((a, b) => a.step - b.step);
      assert.deepEqual(points, expectedLoss);
    } finally {
      await server.stop();
    }
  });
});
