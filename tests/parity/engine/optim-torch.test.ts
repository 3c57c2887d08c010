import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../../framework/engine/backend.js';
import { Optimizer, clipByGlobalNorm } from '../../../framework/engine/optim.js';
import { lrAt, type ScheduleSpec } from '../../../framework/engine/schedules.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';

// Fixture: scripts/fixtures/engine/make_optim_fixture.sh (torch 2.13 CPU).
interface Trace { loss: number; lr: number; grad_norm: number | null; params: Record<string, number[]> }
interface Case { name: string; optimizer: 'adamw' | 'sgd'; steps: number; base_lr: number; schedule: Record<string, number | string>; clip: number | null; trace: Trace[] }
const fx = JSON.parse(readFileSync(join(process.cwd(), 'tests/fixtures/engine/optim.json'), 'utf8')) as {
  x: number[]; y: number[]; shapes: Record<string, number[]>; init: Record<string, number[]>;
  groups: { name: string; params: string[]; lr_mult: number; weight_decay: number }[]; cases: Case[];
};

function schedOf(c: Case): ScheduleSpec {
  const s = c.schedule;
  return s.type === 'poly'
    ? { type: 'poly', max_steps: Number(s.max_steps), power: Number(s.power), warmup: { iters: Number(s.warmup_iters), ratio: Number(s.warmup_ratio) } }
    : { type: 'cosine', max_steps: Number(s.max_steps), min_lr: Number(s.min_lr) };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);

for (const c of fx.cases) {
  test(`${c.name}: losses, learning rates, grad norms and weights match torch (1e-5 relative)`, async () => {
    await useBackend('cpu');
    const vars: Record<string, tf.Variable> = {};
    for (const [k, v] of Object.entries(fx.init)) vars[k] = tf.variable(tf.tensor(v, fx.shapes[k]), true, `optim-${c.name}-${k}`);
    const x = tf.tensor2d(fx.x, fx.shapes.x as [number, number]);
    const y = tf.tensor2d(fx.y, fx.shapes.y as [number, number]);
    const sched = schedOf(c);
    const opt = new Optimizer(vars, { type: c.optimizer, lr: c.base_lr, schedule: sched, betas: [0.9, 0.999], eps: 1e-8, momentum: 0.9, groups: fx.groups });
    const loss = () => tf.mean(tf.square(tf.sub(tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, vars.w1), vars.b1)), vars.w2), vars.b2), y))) as tf.Scalar;
    let i = 0;
    await assertTensorCountFlat(() => {
      const ref = c.trace[i];
      const lr = opt.lrFor(1);
      assert.ok(rel(lr, ref.lr) < 1e-9, `step ${i}: lr ${lr} vs torch ${ref.lr}`);
      assert.ok(rel(lrAt(i, c.base_lr, sched), ref.lr) < 1e-9);
      const res = tf.variableGrads(loss, Object.values(vars));
      const value = res.value;
      // variableGrads keys gradients by tf variable name; the optimizer by parameter name
      const grads = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, res.grads[v.name]]));
      assert.ok(rel(value.dataSync()[0], ref.loss) < 1e-5, `step ${i}: loss ${value.dataSync()[0]} vs torch ${ref.loss}`);
      let g = grads;
      if (c.clip) {
        const clipped = clipByGlobalNorm(grads, c.clip);
        assert.ok(rel(clipped.norm, ref.grad_norm!) < 1e-5, `step ${i}: grad norm ${clipped.norm} vs torch ${ref.grad_norm}`);
        tf.dispose(Object.values(grads));
        g = clipped.grads;
      }
      opt.apply(g);
      tf.dispose([value, ...Object.values(g)]);
      for (const [k, v] of Object.entries(vars)) {
        const got = v.dataSync();
        ref.params[k].forEach((want, j) => assert.ok(Math.abs(got[j] - want) <= 1e-5 * Math.max(1, Math.abs(want)), `step ${i}: ${k}[${j}] ${got[j]} vs torch ${want}`));
      }
      i++;
    }, { warmup: 2, steps: c.steps - 2, label: `${c.name} step` });
    assert.equal(i, c.steps);
    opt.dispose();
    tf.dispose([x, y, ...Object.values(vars)]);
  });
}

test('optimizer state round-trips: a restored optimizer continues exactly like the original', async () => {
  await useBackend('cpu');
  const mk = () => ({ w: tf.variable(tf.tensor1d([0.5, -1, 2]), true) });
  const a = mk();
  const b = mk();
  const oa = new Optimizer(a, { type: 'adamw', weight_decay: 0.05 });
  const grad = (v: tf.Variable) => ({ w: tf.mul(v, 0.3) });
  for (let s = 0; s < 3; s++) {
    const g = grad(a.w);
    oa.apply(g, 0.01);
    tf.dispose(Object.values(g));
  }
  b.w.assign(a.w);
  const ob = new Optimizer(b, { type: 'adamw', weight_decay: 0.05 });
  ob.setState(oa.getState());
  for (const [o, v] of [[oa, a], [ob, b]] as const) {
    const g = grad(v.w);
    o.apply(g, 0.01);
    tf.dispose(Object.values(g));
  }
  assert.deepEqual([...b.w.dataSync()], [...a.w.dataSync()]);
  assert.throws(() => new Optimizer(a, { type: 'sgd', groups: [{ name: 'x', params: ['nope'] }] }), /group x matches no parameter/);
  oa.dispose();
  ob.dispose();
});
