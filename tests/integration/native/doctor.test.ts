import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { collectDoctorReport, formatDoctorReport } from '../../../framework/cli/commands/doctor.js';
import { nativeSkipReason } from './_native.js';

describe('rass doctor', () => {
  it('reports versions, every backend (available or why not), threads and a measured matmul rate', async () => {
    const r = await collectDoctorReport({ seconds: 0.05 });
    assert.equal(r.node, process.version);
    assert.match(r.tfjs, /^4\./);
    assert.deepEqual(r.backends.map((b) => b.name), ['tensorflow', 'wasm', 'cpu']);
    for (const b of r.backends) {
      if (b.available) {
        assert.ok(b.matmulGflops! > 0, `${b.name} matmul rate ${b.matmulGflops}`);
        assert.ok(b.threads! >= 1);
      } else {
        assert.ok(b.detail.length > 0, `${b.name}: unavailable without a reason`);
      }
    }
    const native = r.backends[0]!;
    assert.equal(native.available, nativeSkipReason() === false);
    if (native.available) {
      assert.equal(r.chosen, 'tensorflow');
      assert.match(r.tensorflow ?? '', /^\d+\.\d+/);
    }
    // compiled steps: with the native backend they work (the probe compiled and matched), unless
    // its binding predates the patch (a checkout not rebuilt since: the detail says so)
    if (!native.available) assert.equal(r.compiledSteps.available, false);
    if (!r.compiledSteps.available) assert.match(r.compiledSteps.detail, native.available ? /registerFunction/ : /native/, r.compiledSteps.detail);
    // XLA: the same probe through XLA (the pip wheel carries its CPU JIT), where steps compile
    if (!r.compiledSteps.available) assert.equal(r.xla.available, false);
    else assert.ok(r.xla.available, r.xla.detail);
    const text = formatDoctorReport(r);
    for (const s of ['Node', 'tfjs', 'TensorFlow', 'compiled', 'XLA', 'oneDNN', 'GPU devices', 'tensorflow', 'wasm', 'cpu']) assert.ok(text.includes(s), `doctor output lacks ${s}`);
  });
});
