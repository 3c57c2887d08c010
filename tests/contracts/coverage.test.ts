/**
 * The examples table is the gate: every registered plugin of a contract kind has an entry (so a
 * new plugin cannot skip its kind's suite), and no entry names a plugin that does not exist.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { contractPlugins, EXAMPLES } from './examples.js';

describe('contract examples cover every plugin', () => {
  it('each registered dataset/degradation/metric/loss/head/backbone/adapter/tagger plugin has an example, and each example a plugin', () => {
    const registered = contractPlugins().map((p) => `${p.kind}/${p.name}`).sort();
    const missing = registered.filter((t) => !(t in EXAMPLES));
    assert.deepEqual(missing, [], `plugins without an entry in tests/contracts/examples.ts: ${missing.join(', ')}`);
    const stale = Object.keys(EXAMPLES).filter((t) => !registered.includes(t));
    assert.deepEqual(stale, [], `examples for plugins that are not registered: ${stale.join(', ')}`);
  });
});
