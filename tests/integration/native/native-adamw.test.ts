import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend } from '../../../framework/engine/backend.js';
import { Optimizer, clipCoefficient, fusedAdamW } from '../../../framework/engine/optim.js';
import { withoutNativeOps } from '../../../framework/engine/native-ops.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';
import { nativeSkipReason, normalData, opsRun, tf } from './_native.js';

/**
 * The fused AdamW update (native/ops/optimizer.cc, RassAdamW: every parameter in one op, the
 * clipping coefficient applied inside) against the composite tfjs ops of optim.ts, which
 * tests/parity/engine/optim-torch.test.ts holds to torch.optim.AdamW: equal to the bit over
 * several steps (the kernel rounds every operation as the composite's ops do), with parameter
 * groups (weight decay or none, lr multipliers), tensors cut into several pieces and one of a
 * single value, and a clipping scale below 1. Then torch's own trace (the fixture of the parity
 * test, clipping included) through the fused path.
 */
const skip = nativeSkipReason();

const SHAPES: Record<string, number[]> = { big: [3, 11, 1031], mid: [64, 33], bias: [33], one: [1] };
const GROUPS = [
  { name: 'decayed', params: ['big', 'mid'], lr_mult: 0.5, weight_decay: 0.05 },
  { name: 'plain', params: ['bias', 'one'], lr_mult: 1, weight_decay: 0 },
];

function train(fused: boolean, steps: number, batch = fusedAdamW.batch) {
  const saved = fusedAdamW.batch;
  fusedAdamW.batch = batch;
  try {
    return trainWith(fused, steps);
  } finally {
    fusedAdamW.batch = saved;
  }
}

function trainWith(fused: boolean, steps: number) {
  const vars = Object.fromEntries(Object.entries(SHAPES).map(([k, s]) => [k, tf.tidy(() => tf.variable(tf.tensor(normalData(`adamw/init/${k}`, s.reduce((a, b) => a * b, 1)), s), true))]));
  const opt = new Optimizer(vars, { type: 'adamw', lr: 3e-3, schedule: { type: 'poly', max_steps: 50, power: 1, warmup: { iters: 3, ratio: 0.1 } }, groups: GROUPS });
  const ran: string[] = [];
  const coefs: number[] = [];
  for (let t = 0; t < steps; t++) {
    const grads = Object.fromEntries(Object.entries(SHAPES).map(([k, s]) => [k, tf.tensor(normalData(`adamw/g/${t}/${k}`, s.reduce((a, b) => a * b, 1), 0.5 + t), s)]));
    const { norm, coef } = clipCoefficient(grads, 40);
    coefs.push(coef.dataSync()[0]!);
    const update = () => opt.applyHyper(grads, opt.hyper(), coef);
    if (fused) ran.push(...opsRun(update).ops);
    else withoutNativeOps(update);
    opt.advance();
    tf.dispose([...Object.values(grads), norm, coef]);
  }
  const state = opt.getState();
  const values = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v.dataSync() as Float32Array]));
  opt.dispose();
  tf.dispose(Object.values(vars));
  return { values, state, ran, coefs };
}

describe('fused AdamW (RassAdamW) equals the composite update to the bit', { skip }, () => {
  it('4 tensors (16 pieces, 1 value), two groups, warmup + poly schedule, clipping below 1: weights and Adam moments after 6 steps', async () => {
    await useBackend('tensorflow');
    const before = tf.memory().numTensors;
    const fused = train(true, 6);
    const composite = train(false, 6);
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
    assert.ok(fused.ran.includes('RassAdamW') && fused.ran.filter((o) => o === 'RassAdamW').length === 6, `one RassAdamW per update (ran ${[...new Set(fused.ran)].join(', ')})`);
    assert.ok(!fused.ran.includes('Sqrt'), 'the composite ops did not run as well');
    for (const k of Object.keys(SHAPES)) {
      const [a, b] = [fused.values[k]!, composite.values[k]!];
      const diff = a.findIndex((x, i) => !Object.is(x, b[i]));
      assert.equal(diff, -1, `${k}[${diff}]: fused ${a[diff]} vs composite ${b[diff]}`);
    }
    for (const [key, slot] of Object.entries(composite.state.slots)) {
      const got = fused.state.slots[key]!.data;
      const diff = got.findIndex((x, i) => !Object.is(x, slot.data[i]));
      assert.equal(diff, -1, `slot ${key}[${diff}]: fused ${got[diff]} vs composite ${slot.data[diff]}`);
    }
    assert.ok(fused.coefs.every((c) => c < 0.9), `the clipping scaled every step (coefficients ${fused.coefs.map((c) => c.toFixed(3)).join(', ')})`);
  });

  it('updates split into several ops (batches of at most 2,100 values, a larger tensor alone: 3 ops per step) equal the composite to the bit', async () => {
    await useBackend('tensorflow');
    const fused = train(true, 3, 2100);
    const composite = train(false, 3);
    assert.equal(fused.ran.filter((o) => o === 'RassAdamW').length, 9, 'big alone, mid alone, bias + one together: three ops per step');
    for (const k of Object.keys(SHAPES)) assert.deepEqual(fused.values[k], composite.values[k], k);
  });

  it('the global norm (RassSumSquares, one op for every tensor): within 1e-6 of the norm summed in double in JS, 1e-5 of the composite', async () => {
    await useBackend('tensorflow');
    const grads = Object.fromEntries(Object.entries(SHAPES).map(([k, s]) => [k, tf.tensor(normalData(`norm/${k}`, s.reduce((a, b) => a * b, 1), 3), s)]));
    let exact = 0;
    for (const g of Object.values(grads)) for (const v of g.dataSync()) exact += v * v;
    exact = Math.sqrt(exact);
    const { value, ops } = opsRun(() => clipCoefficient(grads, 10));
    const composite = withoutNativeOps(() => clipCoefficient(grads, 10));
    const [fused, comp] = [value.norm.dataSync()[0]!, composite.norm.dataSync()[0]!];
    assert.ok(ops.includes('RassSumSquares') && !ops.includes('Square'), `ran ${ops.join(', ')}`);
    assert.ok(Math.abs(fused - exact) <= 1e-6 * exact, `fused ${fused} vs exact ${exact}`);
    assert.ok(Math.abs(fused - comp) <= 1e-5 * exact, `fused ${fused} vs composite ${comp}`);
    assert.ok(Math.abs(value.coef.dataSync()[0]! - 10 / (exact + 1e-6)) <= 1e-6, 'coefficient min(1, max / (norm + 1e-6))');
    tf.dispose([...Object.values(grads), value.norm, value.coef, composite.norm, composite.coef]);
  });

  it('torch.optim.AdamW trace (parity fixture: groups, poly warmup, clip 0.5) through the fused path: 1e-5 relative over 20 steps, tensor count flat', async () => {
    await useBackend('tensorflow');
    type Trace = { loss: number; grad_norm: number | null; params: Record<string, number[]> };
    const fx = JSON.parse(readFileSync(join(process.cwd(), 'tests/fixtures/engine/optim.json'), 'utf8')) as {
      x: number[]; y: number[]; shapes: Record<string, number[]>; init: Record<string, number[]>;
      groups: { name: string; params: string[]; lr_mult: number; weight_decay: number }[];
      cases: { name: string; optimizer: string; steps: number; base_lr: number; schedule: Record<string, number | string>; clip: number | null; trace: Trace[] }[];
    };
    const c = fx.cases.find((x) => x.optimizer === 'adamw' && x.clip)!;
    const s = c.schedule;
    const vars: Record<string, tf.Variable> = {};
    for (const [k, v] of Object.entries(fx.init)) vars[k] = tf.variable(tf.tensor(v, fx.shapes[k]), true, `fused-adamw-${k}`);
    const x = tf.tensor2d(fx.x, fx.shapes.x as [number, number]);
    const y = tf.tensor2d(fx.y, fx.shapes.y as [number, number]);
    const opt = new Optimizer(vars, {
      type: 'adamw', lr: c.base_lr, betas: [0.9, 0.999], eps: 1e-8, groups: fx.groups,
      schedule: { type: 'poly', max_steps: Number(s.max_steps), power: Number(s.power), warmup: { iters: Number(s.warmup_iters), ratio: Number(s.warmup_ratio) } },
    });
    const loss = () => tf.mean(tf.square(tf.sub(tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, vars.w1!), vars.b1!)), vars.w2!), vars.b2!), y))) as tf.Scalar;
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);
    let i = 0;
    let fusedRuns = 0;
    await assertTensorCountFlat(() => {
      const ref = c.trace[i]!;
      const res = tf.variableGrads(loss, Object.values(vars));
      const grads = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, res.grads[v.name]!]));
      const { norm, coef } = clipCoefficient(grads, c.clip!);
      assert.ok(rel(norm.dataSync()[0]!, ref.grad_norm!) < 1e-5, `step ${i}: grad norm ${norm.dataSync()[0]} vs torch ${ref.grad_norm}`);
      fusedRuns += opsRun(() => opt.applyHyper(grads, opt.hyper(), coef)).ops.filter((o) => o === 'RassAdamW').length;
      opt.advance();
      tf.dispose([res.value, ...Object.values(grads), norm, coef]);
      for (const [k, v] of Object.entries(vars)) {
        const got = v.dataSync();
        ref.params[k]!.forEach((want, j) => assert.ok(Math.abs(got[j]! - want) <= 1e-5 * Math.max(1, Math.abs(want)), `step ${i}: ${k}[${j}] ${got[j]} vs torch ${want}`));
      }
      i++;
    }, { warmup: 2, steps: c.steps - 2, label: 'fused AdamW step' });
    assert.equal(fusedRuns, c.steps);
    opt.dispose();
    tf.dispose([x, y, ...Object.values(vars)]);
  });
});
