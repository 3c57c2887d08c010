import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { backendRunTags, currentBackend, initBackend, parseBackendName } from '../../../framework/engine/backend.js';
import { nativeSkipReason, tf } from './_native.js';

const skip = nativeSkipReason();

describe('backend chain', () => {
  it('auto picks native TensorFlow when setup:native built it, and records the skipped candidates', { skip }, async () => {
    const lines: string[] = [];
    const c = await initBackend({ prefer: 'auto', env: {}, log: (l) => lines.push(l) });
    assert.equal(c.name, 'tensorflow');
    assert.equal(tf.getBackend(), 'tensorflow');
    assert.equal(c.mode, 'auto');
    // npm packages tfjs-node-gpu / tfjs-node are not installed here; their reasons are kept.
    if (c.via === 'setup-native') assert.equal(c.reasons['tfjs-node-gpu'], 'not installed');
    const tags = backendRunTags(c);
    assert.equal(tags['rass.backend'], 'tensorflow');
    assert.equal(tags['rass.backend.via'], c.via);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^\[rass\] backend tensorflow via /);
    // The same outcome is logged once.
    await initBackend({ prefer: 'auto', env: {}, log: (l) => lines.push(l) });
    assert.equal(lines.length, 1);
  });

  it('a forced backend is used without fallback; RASS_BACKEND forces one when prefer is auto', async () => {
    const w = await initBackend({ prefer: 'wasm', log: null });
    assert.equal(w.name, 'wasm');
    assert.equal(tf.getBackend(), 'wasm');
    assert.equal(w.mode, 'forced');
    const c = await initBackend({ env: { RASS_BACKEND: 'cpu' }, log: null });
    assert.equal(c.name, 'cpu');
    assert.equal(currentBackend()?.name, 'cpu');
    assert.deepEqual(backendRunTags(), { 'rass.backend': 'cpu', 'rass.backend.via': '@tensorflow/tfjs-backend-cpu' });
  });

  it('rejects unknown backend names with the place they came from', () => {
    assert.throws(() => parseBackendName('cuda', 'run.backend'), /run\.backend: unknown backend "cuda"/);
    assert.equal(parseBackendName('tensorflow', 'x'), 'tensorflow');
  });
});
