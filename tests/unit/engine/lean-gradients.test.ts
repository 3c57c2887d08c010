import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend, type BackendName } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import { installLeanGradients, SHAPE_ONLY_SAVES, uninstallLeanGradients } from '../../../framework/engine/lean-gradients.js';
import { recomputed } from '../../../framework/engine/recompute.js';
import { customOp } from '../../../framework/engine/custom-op.js';

/**
 * The freeing backward (framework/engine/lean-gradients.ts) against tfjs' own gradients():
 * the same gradients to the bit (same nodes, same order, same sums), and the properties it
 * exists for: a chain's saved tensors and upstream gradients are freed while the backward
 * walks it, and a shape-only save keeps no buffer alive.
 */

let seed = 0;
function randn(shape: number[]): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Rng.derive(11, `lean-${seed++}`).fillNormal(new Float32Array(n)) as Float32Array, shape);
}

/** Run `f` with tfjs' stock gradients(), then put the lean one back. */
function stock<T>(f: () => T): T {
  uninstallLeanGradients();
  try {
    return f();
  } finally {
    installLeanGradients();
  }
}

function assertSame(a: tf.Tensor, b: tf.Tensor, what: string): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const x = a.dataSync();
  const y = b.dataSync();
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: element ${i}: ${x[i]} !== ${y[i]}`);
}

/** dy passed through unchanged to both inputs: one gradient object then holds two tensors' gradients. */
const passThrough = customOp(([a, b], save) => {
  save([]);
  return { value: tf.add(a as tf.Tensor, b as tf.Tensor), gradFunc: (dy) => [dy, dy] };
});

/** Every kernel whose save the lean tape replaces by a shape stand-in, a reused tensor (gradients accumulate), a pass-through custom gradient. */
function everyKernel(x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor): tf.Scalar {
  const h = tf.tanh(tf.matMul(x, w)); // [4, 6]
  const a = tf.add(h, bias); // Add, broadcast [6]
  const s = tf.sub(bias, a); // Sub, broadcast the other way
  const r = tf.reshape(s, [2, 2, 6]); // Reshape
  const c = tf.concat([r, tf.mul(r, tf.reshape(h, [2, 2, 6]))], 1); // Concat; h used twice
  const m = tf.mean(c, [1], true); // Mean keepDims
  const sm = tf.sum(tf.exp(c), 2); // Sum
  const sl = tf.slice(c, [0, 1, 2], [2, 2, 3]); // Slice
  const an = tf.addN([sl, sl, tf.sin(sl)]); // AddN
  // last, so the gradient it passes to both inputs is the backward's own seed (a buffer no
  // other tensor shares: disposing it too early is visible)
  return passThrough(tf.sum(tf.square(an)), tf.add(tf.sum(m), tf.sum(sm))) as tf.Scalar;
}

const backends: BackendName[] = ['cpu', 'wasm', ...(process.env.RASS_NATIVE_AVAILABLE === '1' ? ['tensorflow' as BackendName] : [])];

for (const backend of backends) {
  describe(`lean gradients on ${backend}`, () => {
    before(async () => {
      await useBackend(backend);
    });

    it(`covers every shape-only kernel (${[...SHAPE_ONLY_SAVES].join(', ')}): gradients equal to tfjs' own, bit for bit`, () => {
      const x = randn([4, 5]);
      const w = tf.variable(randn([5, 6]));
      const bias = tf.variable(randn([6]));
      const seen = new Set<string>();
      const engine = tf.engine() as unknown as { addTapeNode: (k: string, ...rest: unknown[]) => void };
      const add = engine.addTapeNode;
      engine.addTapeNode = function (k: string, ...rest: unknown[]) {
        seen.add(k);
        return add.call(this, k, ...rest);
      };
      const lean = tf.variableGrads(() => everyKernel(x, w, bias));
      engine.addTapeNode = add;
      for (const k of SHAPE_ONLY_SAVES) assert.ok(seen.has(k), `the test function does not run ${k}`);
      const ref = stock(() => tf.variableGrads(() => everyKernel(x, w, bias)));
      assertSame(lean.value, ref.value, 'value');
      for (const name of Object.keys(ref.grads)) assertSame(lean.grads[name] as tf.Tensor, ref.grads[name] as tf.Tensor, `grad ${name}`);
      tf.dispose([lean.value, ref.value, ...Object.values(lean.grads), ...Object.values(ref.grads), x, w, bias]);
    });

    it('tf.grads with a caller dy, gradients of several inputs, and checkpointed blocks (a gradients() inside the backward) match tfjs', () => {
      const x = randn([3, 4]);
      const y = randn([3, 4]);
      const dy = randn([3, 4]);
      const w = tf.variable(randn([4, 4]));
      const f = (a: tf.Tensor, b: tf.Tensor) => {
        const block = (u: tf.Tensor) => tf.tanh(tf.matMul(tf.reshape(tf.add(u, 1), [3, 4]), w));
        return tf.mul(recomputed(block, [a], [w]), tf.sigmoid(b));
      };
      const g = tf.grads(f);
      const lean = g([x, y], dy);
      const ref = stock(() => g([x, y], dy));
      lean.forEach((t, i) => assertSame(t, ref[i] as tf.Tensor, `d input ${i}`));
      assert.ok(!dy.isDisposed, "the caller's dy was disposed");
      tf.dispose([...lean, ...ref, x, y, dy, w]);
    });

    it('higher-order gradients still work (d2/dx2 x^3 = 6x)', () => {
      const x = tf.tensor1d([1, -2, 0.5]);
      const d2 = tf.grad(tf.grad((u: tf.Tensor) => tf.pow(u, 3)))(x);
      assert.deepEqual(Array.from(d2.dataSync()), [6, -12, 3]);
      tf.dispose([x, d2]);
    });

    it('leaks nothing: the tensor count is flat over 20 gradient steps', () => {
      const x = randn([4, 5]);
      const w = tf.variable(randn([5, 6]));
      const bias = tf.variable(randn([6]));
      const stepOnce = () => {
        const { value, grads } = tf.variableGrads(() => everyKernel(x, w, bias));
        tf.dispose([value, ...Object.values(grads)]);
      };
      stepOnce();
      const before = tf.memory().numTensors;
      for (let i = 0; i < 20; i++) stepOnce();
      assert.equal(tf.memory().numTensors, before);
      tf.dispose([x, w, bias]);
    });

    describe('memory', () => {
      // Counted in data buffers (tf.memory().numDataBuffers): tfjs' numBytes counts a buffer
      // once per tensor sharing it (a saved clone, a reshape), buffers are what RSS pays for.
      // Every buffer the chain makes is one 64x64 activation.
      const N = 12;
      const SIZE = [64, 64];
      /** Live buffers when each probe's gradient runs: the backward's memory as it walks the chain. */
      let live: number[] = [];
      const probe = customOp(([u], save) => {
        save([]);
        return {
          value: tf.clone(u as tf.Tensor),
          gradFunc: (dy) => {
            live.push(tf.memory().numDataBuffers);
            return [tf.clone(dy)];
          },
        };
      });
      /**
       * Per layer: Add (saves both inputs for their shapes), Mul (saves both, needed), Reshape
       * (saves its input for its shape). c and w are made beforehand, so the layer's own
       * buffers are the Add's and the Mul's outputs; the gradient needs only the Add's.
       */
      const chain = (x: tf.Tensor, c: tf.Tensor, w: tf.Tensor) => {
        let h = x;
        for (let i = 0; i < N; i++) h = probe(tf.reshape(tf.mul(tf.add(h, c), w), SIZE));
        return tf.sum(h) as tf.Scalar;
      };
      after(() => {
        installLeanGradients();
      });

      /** Buffers above the baseline at the first and at the last probe gradient. */
      const measure = (x: tf.Tensor, c: tf.Tensor, w: tf.Tensor) => {
        const base = tf.memory().numDataBuffers;
        live = [];
        const { value, grads } = tf.variableGrads(() => chain(x, c, w), [w as tf.Variable]);
        tf.dispose([value, ...Object.values(grads)]);
        assert.equal(live.length, N);
        return { start: (live[0] as number) - base, end: (live[N - 1] as number) - base };
      };

      it(`the backward frees as it goes and shape-only saves keep no buffer (chain of ${N} layers)`, () => {
        const x = randn(SIZE);
        const c = randn(SIZE);
        const w = tf.variable(randn(SIZE));
        const lean = measure(x, c, w);
        const ref = stock(() => measure(x, c, w));
        // A saved tensor is a clone: it shares its buffer on cpu and native, wasm copies it.
        const probeClone = tf.zeros([4]);
        const buffers = tf.memory().numDataBuffers;
        const copy = tf.clone(probeClone);
        const clonesCopy = tf.memory().numDataBuffers > buffers;
        tf.dispose([probeClone, copy]);
        // backward start: lean keeps what the Muls saved: the Add outputs (N), and a copy of w
        // per Mul where clones copy; tfjs also keeps, for their shapes, the Mul outputs the
        // next Add and the Reshape saved (at least N more)
        const needed = clonesCopy ? 2 * N : N;
        assert.ok(lean.start <= needed + 5, `lean backward starts holding ${lean.start} buffers (expected <= ${needed + 5})`);
        assert.ok(ref.start >= lean.start + N, `tfjs' backward starts holding ${ref.start} buffers (expected >= lean's ${lean.start} + ${N})`);
        // backward end: lean holds the first layer's saves and a few gradients; tfjs every save
        // and every upstream gradient it computed
        assert.ok(lean.end <= 8, `lean backward ends holding ${lean.end} buffers (expected <= 8)`);
        assert.ok(ref.end >= 3 * N, `tfjs' backward ends holding ${ref.end} buffers (expected >= ${3 * N})`);
        tf.dispose([x, c, w]);
      });
    });
  });
}
