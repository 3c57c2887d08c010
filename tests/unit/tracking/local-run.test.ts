import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalRun } from '../../../framework/tracking/local-run.js';
import { readJournal } from '../../../framework/tracking/journal.js';
import { lastJournalSeq } from '../../../framework/tracking/mlflow/catch-up.js';

const files = { configYaml: 'experiment: { type: experiment/x }\n', overrides: [] };

describe('LocalRun.create', () => {
  it('refuses a directory that holds a journal, reuses one a killed creator left without a journal', async () => {
    const root = mkdtempSync(join(tmpdir(), 'rass-localrun-'));
    const dir = join(root, 'exp', 'r1');
    const a = LocalRun.create(dir, 'r1', files);
    a.append({ type: 'run', runId: 'r1', experiment: 'exp', name: 'r1' });
    await a.finalize('FINISHED');
    assert.throws(() => LocalRun.create(dir, 'r1', files), /run directory .* already exists/);

    // killed between mkdir and the journal: directories and a stale lock of a dead process
    const half = join(root, 'exp', 'r2');
    mkdirSync(join(half, 'artifacts'), { recursive: true });
    writeFileSync(join(half, 'lock'), JSON.stringify({ pid: 2 ** 22 + 17, host: hostname(), started: 0 }));
    const warnings: string[] = [];
    const b = LocalRun.create(half, 'r2', files, { warn: (m) => warnings.push(m) });
    b.append({ type: 'run', runId: 'r2', experiment: 'exp', name: 'r2' });
    await b.finalize('FINISHED');
    assert.deepEqual(readJournal(join(half, 'journal.jsonl')).events.map((e) => e.type), ['run', 'status']);
    assert.equal(existsSync(join(half, 'lock')), false);
    assert.match(warnings.join('\n'), /stale lock/);
    assert.equal(lastJournalSeq(join(half, 'journal.jsonl')), 1);
  });
});
