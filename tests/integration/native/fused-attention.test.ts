import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../../../framework/engine/backend.js';
import { memoryEfficientAttention, plainAttention } from '../../../framework/engine/attention.js';
import { compileStep, pickScalars, scalarInputs } from '../../../framework/engine/compile.js';
import { nativeOpsEnabled, nativeOpsStatus, withoutNativeOps } from '../../../framework/engine/native-ops.js';
import { Optimizer } from '../../../framework/engine/optim.js';
import { nativeSkipReason, normalData, opsRun, relErr, tf } from './_native.js';

/**
 * The fused attention kernels (native/ops/attention.cc, RassAttention / RassAttentionGrad)
 * against plain attention (scores and softmax as ordinary ops, tfjs' gradients): forward
 * within 1e-5 and q/k/v gradients within 1e-4, relative to the reference's largest entry,
 * over shapes that exercise partial query tiles (64 rows) and key tiles (512 keys), d != dv,
 * cross-attention over 77 tokens, a head split over key parts (fewer than 8 head-batches),
 * and scores large enough that a softmax without the running maximum overflows. Also: the
 * fused op really is what runs, memory stays flat, a compiled step records it and matches
 * eager, a second call gives the same bits, and a step meant for XLA records the composite
 * ops instead.
 */
const FWD = 1e-5;
const GRAD = 1e-4;
const skip = nativeSkipReason();
const quiet = () => {};

interface Case {
  name: string;
  b: number;
  nq: number;
  nk: number;
  heads: number;
  d: number;
  dv: number;
  std?: number;
}

const CASES: Case[] = [
  { name: 'self-attention, 600 queries (a partial 64-row tile), 600 keys, 2 heads', b: 2, nq: 600, nk: 600, heads: 2, d: 8, dv: 8 },
  { name: 'cross-attention over 77 prompt tokens, 3 heads, dv != d', b: 2, nq: 130, nk: 77, heads: 3, d: 8, dv: 12 },
  { name: 'one head-batch over 1300 keys (three key tiles, the last partial; the head split into key parts)', b: 1, nq: 100, nk: 1300, heads: 1, d: 16, dv: 16 },
  { name: 'scores near 1e3 (a softmax without the running maximum overflows)', b: 1, nq: 70, nk: 700, heads: 2, d: 4, dv: 4, std: 16 },
];

const rassOps = (ops: string[]) => [...new Set(ops.filter((n) => n.startsWith('Rass')))].sort();

function inputs(c: Case) {
  const t = (key: string, n: number, d: number, std = 1) => tf.tensor3d(normalData(`${c.name}/${key}`, c.b * n * c.heads * d, std), [c.b, n, c.heads * d]);
  return { q: t('q', c.nq, c.d, c.std ?? 1), k: t('k', c.nk, c.d, c.std ?? 1), v: t('v', c.nk, c.dv), dy: t('dy', c.nq, c.dv) };
}

/** Output and gradients of sum(attention(q, k, v) * dy). */
function run(attn: typeof plainAttention, c: Case) {
  const { q, k, v, dy } = inputs(c);
  const opts = { heads: c.heads };
  const out = attn(q, k, v, opts);
  const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, cc: tf.Tensor) => tf.sum(tf.mul(attn(a, b, cc, opts), dy)))([q, k, v]);
  const r = { out: out.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  tf.dispose([q, k, v, dy, out, ...grads]);
  return r;
}

describe('fused attention kernels (native backend)', { skip }, () => {
  it('are built and loaded with the setup:native backend', async () => {
    await useBackend('tensorflow');
    assert.ok(nativeOpsStatus().available, `native ops unavailable: ${nativeOpsStatus().detail}`);
    assert.ok(nativeOpsEnabled());
    assert.equal(withoutNativeOps(() => nativeOpsEnabled()), false);
  });

  for (const c of CASES) {
    it(`${c.name}: output <= ${FWD}, dq/dk/dv <= ${GRAD} of plain attention`, async () => {
      await useBackend('tensorflow');
      const ref = run(plainAttention, c);
      const { value: fused, ops } = opsRun(() => run(memoryEfficientAttention, c));
      assert.deepEqual(rassOps(ops), ['RassAttention', 'RassAttentionGrad'], 'the fused kernels ran');
      assert.ok(fused.out.every(Number.isFinite), 'finite output');
      const e = relErr(fused.out, ref.out);
      assert.ok(e <= FWD, `output relative error ${e.toExponential(3)}`);
      ['dq', 'dk', 'dv'].forEach((name, i) => {
        const eg = relErr(fused.grads[i]!, ref.grads[i]!);
        assert.ok(eg <= GRAD, `${name} relative error ${eg.toExponential(3)}`);
      });
      // and the same bits on a second call (buffers elsewhere in memory: Eigen's vectorised
      // sums depend on alignment, which the kernels pin)
      const again = run(memoryEfficientAttention, c);
      assert.ok([again.out, ...again.grads].every((a, i) => Buffer.from(a.buffer).equals(Buffer.from([fused.out, ...fused.grads][i]!.buffer))), 'a second call gives the same bits');
    });
  }

  it('a masked call takes the composite path', async () => {
    await useBackend('tensorflow');
    const q = tf.tensor3d(normalData('mask/q', 2 * 5 * 8), [1, 5, 16]);
    const k = tf.tensor3d(normalData('mask/k', 2 * 7 * 8), [1, 7, 16]);
    const mask = tf.zeros([1, 5, 7]) as tf.Tensor3D;
    const { value, ops } = opsRun(() => memoryEfficientAttention(q, k, k, { heads: 2, mask }));
    assert.deepEqual(rassOps(ops), []);
    assert.ok(ops.includes('Softmax'), ops.join(', '));
    tf.dispose([q, k, mask, value]);
  });

  it('forward + backward keep the tensor count flat over 10 steps', async () => {
    await useBackend('tensorflow');
    const c = CASES[1]!;
    const { q, k, v, dy } = inputs(c);
    const step = () => tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor, cc: tf.Tensor) => tf.sum(tf.mul(memoryEfficientAttention(a, b, cc, { heads: c.heads }), dy)))([q, k, v]).forEach((g) => g.dataSync()));
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 10; i++) step();
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([q, k, v, dy]);
  });

  for (const mode of ['auto', 'xla'] as const) {
    it(`a compiled step (compile: ${mode}) ${mode === 'auto' ? 'records the fused kernels and matches the eager step within 1e-5 over 5 steps' : 'records the composite ops (XLA has no kernels for the fused ones)'}`, async () => {
      await useBackend('tensorflow');
      const c = CASES[0]!;
      const train = (m: 'off' | 'auto' | 'xla') => {
        const { q, k, v, dy } = inputs(c);
        const w = tf.variable(tf.tensor2d(normalData('w', 16 * 16, 0.3), [16, 16]), true, `fused-attn-w-${m}-${mode}`);
        const opt = new Optimizer({ w }, { type: 'adamw', lr: 1e-2, weight_decay: 0, schedule: { type: 'constant' } });
        const proj = (x: tf.Tensor) => tf.reshape(tf.matMul(tf.reshape(x, [-1, 16]), w), x.shape);
        const step = compileStep(
          (i: Record<string, tf.Tensor>) => {
            const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(memoryEfficientAttention(proj(i.q!), i.k!, i.v!, { heads: c.heads }), i.dy!)) as tf.Scalar, [w]);
            opt.applyHyper({ w: grads[w.name]! }, pickScalars(i));
            return { loss: value };
          },
          { mode: m, name: 'fused-attention', log: quiet },
        );
        const losses: number[] = [];
        const { ops } = opsRun(() => {
          for (let s = 0; s < (m === 'xla' ? 1 : 5); s++) {
            const h = scalarInputs(opt.hyper());
            const { loss } = step.call({ q, k, v, dy, ...h });
            opt.advance();
            losses.push(loss!.dataSync()[0]!);
            tf.dispose([loss!, ...Object.values(h)]);
          }
        });
        const out = { losses, w: w.dataSync() as Float32Array, status: step.status(), ops };
        step.dispose();
        opt.dispose();
        tf.dispose([q, k, v, dy, w]);
        return out;
      };
      if (mode === 'xla') {
        const xla = train('xla');
        assert.deepEqual(rassOps(xla.ops), []);
        assert.ok(xla.ops.includes('Softmax'), `recorded ${xla.ops.join(', ')}`);
        return;
      }
      const { value: eager, ops: eagerOps } = opsRun(() => train('off'));
      assert.ok(eagerOps.includes('RassAttention') && eagerOps.includes('RassAttentionGrad'), `eager ops ${eagerOps}`);
      const { value: compiled, ops: recorded } = opsRun(() => train('auto'));
      assert.ok(recorded.includes('RassAttention') && recorded.includes('RassAttentionGrad'), 'recorded the fused kernels');
      assert.equal(compiled.status.state, 'compiled', JSON.stringify(compiled.status));
      assert.ok(compiled.status.compiledCalls >= 2, JSON.stringify(compiled.status));
      assert.ok(relErr(Float32Array.from(compiled.losses), Float32Array.from(eager.losses)) <= 1e-5, `losses ${compiled.losses} vs ${eager.losses}`);
      assert.ok(relErr(compiled.w, eager.w) <= 1e-5, 'weights');
    });
  }
});
