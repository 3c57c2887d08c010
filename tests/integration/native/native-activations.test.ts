import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../../../framework/engine/backend.js';
import { geglu, silu } from '../../../framework/engine/fused-ops.js';
import { withoutNativeOps } from '../../../framework/engine/native-ops.js';
import { nativeSkipReason, normalData, opsRun, relErr, tf } from './_native.js';

/**
 * The fused GEGLU / SiLU kernels (native/ops/activation.cc, RassGeglu / RassSilu and their
 * gradients) against the composites (tfjs ops with the hand-written gradients of fused-ops.ts,
 * themselves tested against plain compositions and torch in tests/unit/engine/memory-ops.test.ts):
 * output within 1e-5 and input gradient within 1e-4 of the largest entry, over a long row cut
 * into several pieces (GEGLU over 2 x 9,000 values: value and gate halves must stay paired),
 * short rows sharing a piece, a length that is no multiple of the vector width, and inputs
 * out to +-12 where erf and the logistic saturate. The fused kernels must be what ran.
 */
const skip = nativeSkipReason();

interface Case {
  name: string;
  shape: number[];
  fn: (x: tf.Tensor) => tf.Tensor;
  ops: string[];
  std: number;
}

const CASES: Case[] = [
  { name: 'GEGLU, 3 x 2 x 18000 (rows of 9,000 value/gate pairs, two pieces each)', shape: [3, 2, 18000], fn: geglu, ops: ['RassGeglu', 'RassGegluGrad'], std: 1.5 },
  { name: 'GEGLU, 37 x 2 x 10 (many short rows per piece, 5 pairs each)', shape: [37, 2, 10], fn: geglu, ops: ['RassGeglu', 'RassGegluGrad'], std: 1.5 },
  { name: 'GEGLU of inputs out to +-12 (erf saturates)', shape: [5, 64], fn: geglu, ops: ['RassGeglu', 'RassGegluGrad'], std: 6 },
  { name: 'SiLU, 2 x 33 x 17 x 19 (21,318 values: pieces with a partial last one)', shape: [2, 33, 17, 19], fn: silu, ops: ['RassSilu', 'RassSiluGrad'], std: 2 },
  { name: 'SiLU of inputs out to +-12 (the logistic saturates)', shape: [1001], fn: silu, ops: ['RassSilu', 'RassSiluGrad'], std: 6 },
  // tf.softmax's gradient (native-ops.ts registers it once the kernels load): rows of 1,000
  // (attention scores), and short rows of a 4-D tensor
  { name: 'softmax gradient, 6 x 1000 (RassSoftmaxGrad)', shape: [6, 1000], fn: (x) => tf.softmax(x), ops: ['RassSoftmaxGrad'], std: 3 },
  { name: 'softmax gradient, 2 x 3 x 5 x 7 (rows of 7)', shape: [2, 3, 5, 7], fn: (x) => tf.softmax(x), ops: ['RassSoftmaxGrad'], std: 3 },
];

function run(c: Case) {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const x = tf.tensor(normalData(`${c.name}/x`, n, c.std), c.shape);
  const out = c.fn(x);
  const dy = tf.tensor(normalData(`${c.name}/dy`, out.size), out.shape);
  const grad = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(c.fn(a), dy)))(x);
  const r = { out: out.dataSync() as Float32Array, grad: grad.dataSync() as Float32Array };
  tf.dispose([x, out, dy, grad]);
  return r;
}

describe('fused GEGLU / SiLU / softmax-gradient kernels (native backend)', { skip }, () => {
  for (const c of CASES) {
    it(`${c.name}: output <= 1e-5, input gradient <= 1e-4 of the composite`, async () => {
      await useBackend('tensorflow');
      const ref = withoutNativeOps(() => run(c));
      const { value: fused, ops } = opsRun(() => run(c));
      assert.deepEqual([...new Set(ops.filter((o) => o.startsWith('Rass')))].sort(), c.ops);
      const e = relErr(fused.out, ref.out);
      assert.ok(e <= 1e-5, `output relative error ${e.toExponential(3)}`);
      const eg = relErr(fused.grad, ref.grad);
      assert.ok(eg <= 1e-4, `gradient relative error ${eg.toExponential(3)}`);
    });
  }

  it('forward + backward keep the tensor count flat over 10 steps', async () => {
    await useBackend('tensorflow');
    const x = tf.tensor(normalData('flat/x', 2 * 8 * 64), [2, 8, 64]);
    const step = () => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.sum(tf.square(silu(geglu(a)))))(x).dataSync());
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 10; i++) step();
    assert.equal(tf.memory().numTensors, before);
    x.dispose();
  });
});
