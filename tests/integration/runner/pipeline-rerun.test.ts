/**
 * A staged pipeline re-run skips its finished stages only while nothing it runs has changed:
 * editing a stage's config file (not the pipeline file) makes the next run a new pipeline whose
 * stage trains again with the edited file, instead of silently reusing the old stage's run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runPipeline, type PipelineOptions } from '../../../framework/runner/pipeline.js';
import { readJournal } from '../../../framework/tracking/journal.js';
import { registry, streams, tempDir } from './helpers.js';

function stageYaml(steps: number): string {
  return ['name: toy', 'seed: 7', 'backend: cpu', 'experiment:', '  type: experiment/toy-classifier', `  steps: ${steps}`, '  batch_size: 32', '  hidden: 8', '  train_size: 128', '  test_size: 64', `  eval_every: ${steps}`, `  checkpoint_every: ${steps}`, ''].join('\n');
}

describe('pipeline re-run', () => {
  it('skips finished stages when nothing changed; a changed stage config is a new pipeline that trains again', async () => {
    const dir = tempDir('pipe-rerun');
    writeFileSync(join(dir, 'stage.yaml'), stageYaml(10));
    writeFileSync(join(dir, 'pipe.yaml'), ['name: pipe', 'stages:', '  - { id: a, config: stage.yaml }', ''].join('\n'));
    const runsDir = join(dir, 'runs');
    const run = async () => {
      const s = streams();
      const o: PipelineOptions = { registry: registry(), cwd: dir, env: {}, stdout: s.stdout, stderr: s.stderr, trackerFactories: [], configFile: join(dir, 'pipe.yaml'), sets: [`runs_dir=${runsDir}`] };
      const r = await runPipeline(o);
      return { ...r, out: s.out() };
    };
    const steps = (runDir: string) => readJournal(join(runDir, 'journal.jsonl')).events.filter((e) => e.type === 'metrics' && e.values.loss !== undefined).length;
    const stageDir = (parentId: string) => join(runsDir, 'toy-classifier', `${parentId}.a`);

    const first = await run();
    assert.equal(first.status, 'FINISHED', first.out);
    assert.equal(steps(stageDir(first.runId)), 10);

    const again = await run();
    assert.equal(again.runId, first.runId);
    assert.match(again.out, /stage a: finished earlier .* skipped/);

    writeFileSync(join(dir, 'stage.yaml'), stageYaml(20));
    const edited = await run();
    assert.equal(edited.status, 'FINISHED', edited.out);
    assert.notEqual(edited.runId, first.runId, 'an edited stage config must not reopen the old pipeline');
    assert.doesNotMatch(edited.out, /skipped/);
    assert.equal(steps(stageDir(edited.runId)), 20, 'the stage trained with the edited config');
    assert.deepEqual(readdirSync(join(runsDir, 'pipe')).sort(), [first.runId, edited.runId].sort());
  });
});
