/** The built-in registry package carries every degradation plugin and the `rass degrade` command. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { registryPackage } from '../../../registry/index.js';
import { plugins } from '../../../registry/degradations/index.js';

describe('degradation registration', () => {
  it('registry package lists the degradation plugins and the degrade command', () => {
    const types = new Set(registryPackage.plugins.map((p) => `${p.kind}/${p.name}`));
    for (const p of plugins) assert.ok(types.has(`degradation/${p.name}`), `degradation/${p.name}`);
    assert.ok((registryPackage.commands ?? []).some((c) => c.name === 'degrade'));
  });
});
