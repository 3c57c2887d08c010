import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend, type BackendName } from '../../../framework/engine/backend.js';
import { Rng } from '../../../framework/engine/rng.js';
import { attentionChunkSize, memoryEfficientAttention } from '../../../framework/engine/attention.js';
import { geglu, gelu, groupNorm, layerNorm, silu } from '../../../framework/engine/fused-ops.js';

/**
 * The memory-lean ops against their plain compositions written out here (per head, with
 * tfjs' own gradients): forward within 1e-5, gradients within 1e-4 (relative to the largest
 * gradient entry), on every backend; and the property they exist for: attention's memory
 * for a training step grows linearly, not quadratically, with the token count.
 */
const FWD = 1e-5;
const GRAD = 1e-4;

let seed = 0;
function randn(shape: number[], std = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Rng.derive(7, `memory-ops-${seed++}`).fillNormal(new Float32Array(n), 0, std) as Float32Array, shape);
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): { d: number; scale: number } {
  return tf.tidy(() => ({ d: tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number, scale: tf.max(tf.abs(b)).dataSync()[0] as number }));
}

function assertNear(a: tf.Tensor, b: tf.Tensor, tol: number, what: string, relative = false): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const { d, scale } = maxDiff(a, b);
  assert.ok(scale > 0 || !relative, `${what}: reference is all zero`);
  const bound = relative ? tol * Math.max(scale, 1e-3) : tol;
  assert.ok(d <= bound, `${what}: max |diff| ${d.toExponential(3)} > ${bound.toExponential(3)} (max |ref| ${scale.toExponential(3)})`);
}

/** Reference attention: one head at a time, plain ops, tfjs gradients. q [B, Nq, H*d]. */
function referenceAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, heads: number, scale: number, mask: tf.Tensor | null): tf.Tensor {
  const [b, nq, hd] = q.shape as number[];
  const nk = k.shape[1] as number;
  const d = (hd as number) / heads;
  const dv = (v.shape[2] as number) / heads;
  const outs: tf.Tensor[] = [];
  for (let h = 0; h < heads; h++) {
    const qh = tf.slice(q, [0, 0, h * d], [b as number, nq as number, d]);
    const kh = tf.slice(k, [0, 0, h * d], [b as number, nk, d]);
    const vh = tf.slice(v, [0, 0, h * dv], [b as number, nk, dv]);
    let s = tf.mul(tf.matMul(qh, kh, false, true), scale);
    if (mask) {
      // mask rows are indexed b * heads + h (torch nn.MultiheadAttention's layout)
      const rows = mask.shape[0] === 1 ? tf.tile(mask, [b as number, 1, 1]) : tf.gather(mask, Array.from({ length: b as number }, (_, i) => i * heads + h));
      s = tf.add(s, rows);
    }
    outs.push(tf.matMul(tf.softmax(s, -1), vh));
  }
  return tf.concat(outs, -1);
}

interface AttnCase {
  name: string;
  b: number;
  nq: number;
  nk: number;
  heads: number;
  d: number;
  chunk: number;
  mask?: 'rows' | 'shared';
}

const CASES: AttnCase[] = [
  { name: 'self-attention, chunks of 7 over 40 queries (last chunk partial)', b: 2, nq: 40, nk: 40, heads: 2, d: 8, chunk: 7 },
  { name: 'cross-attention, 77 prompt tokens, one chunk', b: 2, nq: 24, nk: 77, heads: 4, d: 4, chunk: 0 },
  { name: 'Mask2Former masked cross-attention (per batch and head mask), chunks of 5', b: 2, nq: 12, nk: 30, heads: 2, d: 8, chunk: 5, mask: 'rows' },
  { name: 'masked, one mask shared by every batch and head', b: 1, nq: 9, nk: 16, heads: 3, d: 4, chunk: 4, mask: 'shared' },
  { name: 'Mask2Former masked cross-attention, one automatic chunk (probabilities kept, not recomputed)', b: 2, nq: 12, nk: 30, heads: 2, d: 8, chunk: 0, mask: 'rows' },
];

function maskFor(c: AttnCase): tf.Tensor3D | undefined {
  if (!c.mask) return undefined;
  const rows = c.mask === 'rows' ? c.b * c.heads : 1;
  const r = Rng.derive(3, `mask-${c.name}`);
  const m = new Float32Array(rows * c.nq * c.nk);
  for (let i = 0; i < rows * c.nq; i++) {
    // as Mask2Former: -1e9 where the previous mask says no, never a whole row
    const keep = r.int(0, c.nk);
    for (let j = 0; j < c.nk; j++) if (j !== keep && r.random() < 0.6) m[i * c.nk + j] = -1e9;
  }
  return tf.tensor3d(m, [rows, c.nq, c.nk]);
}

const backends: BackendName[] = ['cpu', 'wasm', ...(process.env.RASS_NATIVE_AVAILABLE === '1' ? ['tensorflow' as BackendName] : [])];

for (const backend of backends) {
  describe(`memory-efficient attention and fused ops on ${backend}`, () => {
    before(async () => {
      await useBackend(backend);
    });

    for (const c of CASES) {
      it(`attention: ${c.name}: output <= ${FWD}, dq/dk/dv <= ${GRAD}`, () => {
        const q = randn([c.b, c.nq, c.heads * c.d]);
        const k = randn([c.b, c.nk, c.heads * c.d]);
        const v = randn([c.b, c.nk, c.heads * c.d]);
        const mask = maskFor(c);
        const r = randn([c.b, c.nq, c.heads * c.d]);
        const scale = 1 / Math.sqrt(c.d);
        const lossOf = (f: (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.Tensor) => (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => tf.sum(tf.mul(f(qq, kk, vv), r));
        const ours = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => memoryEfficientAttention(qq, kk, vv, { heads: c.heads, mask, chunk: c.chunk });
        const ref = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => referenceAttention(qq, kk, vv, c.heads, scale, mask ?? null);
        tf.tidy(() => {
          assertNear(ours(q, k, v), ref(q, k, v), FWD, 'output');
          const g1 = tf.grads(lossOf(ours))([q, k, v]);
          const g2 = tf.grads(lossOf(ref))([q, k, v]);
          ['dq', 'dk', 'dv'].forEach((n, i) => assertNear(g1[i] as tf.Tensor, g2[i] as tf.Tensor, GRAD, n, true));
        });
        // the kernel's own bookkeeping: nothing kept after a forward + backward
        const start = tf.memory().numTensors;
        const g = tf.grads(lossOf(ours))([q, k, v]);
        tf.dispose(g);
        assert.equal(tf.memory().numTensors, start, 'forward + backward leaked tensors');
        tf.dispose([q, k, v, r, ...(mask ? [mask] : [])]);
      });
    }

    it('fused GroupNorm (NHWC and [B, N, C]) and LayerNorm: values <= 1e-5, dx/dgamma/dbeta <= 1e-4', () => {
      const composedGroupNorm = (x: tf.Tensor, gm: tf.Tensor, bt: tf.Tensor, groups: number, eps: number) => {
        const c = x.shape[x.rank - 1] as number;
        const g = tf.reshape(x, [x.shape[0] as number, -1, groups, c / groups]);
        const { mean, variance } = tf.moments(g, [1, 3], true);
        return tf.add(tf.mul(tf.reshape(tf.div(tf.sub(g, mean), tf.sqrt(tf.add(variance, eps))), x.shape), gm), bt);
      };
      const composedLayerNorm = (x: tf.Tensor, gm: tf.Tensor, bt: tf.Tensor, eps: number) => {
        const { mean, variance } = tf.moments(x, -1, true);
        return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), gm), bt);
      };
      const cases: { what: string; x: tf.Tensor; ours: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor; ref: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor }[] = [
        { what: 'groupNorm NHWC', x: tf.add(randn([2, 5, 3, 8], 2), 0.7), ours: (x, g, b) => groupNorm(x, g, b, 4, 1e-5), ref: (x, g, b) => composedGroupNorm(x, g, b, 4, 1e-5) },
        { what: 'groupNorm [B, N, C]', x: randn([2, 11, 12]), ours: (x, g, b) => groupNorm(x, g, b, 3, 1e-6), ref: (x, g, b) => composedGroupNorm(x, g, b, 3, 1e-6) },
        { what: 'layerNorm', x: tf.add(randn([3, 7, 16]), 1.5), ours: (x, g, b) => layerNorm(x, g, b, 1e-5), ref: (x, g, b) => composedLayerNorm(x, g, b, 1e-5) },
      ];
      for (const c of cases) {
        const ch = c.x.shape[c.x.rank - 1] as number;
        const gm = tf.add(randn([ch], 0.5), 1);
        const bt = randn([ch], 0.5);
        const r = randn(c.x.shape);
        assertNear(c.ours(c.x, gm, bt), c.ref(c.x, gm, bt), FWD, `${c.what} value`);
        const loss = (f: typeof c.ours) => (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(x, g, b), r));
        const g1 = tf.grads(loss(c.ours))([c.x, gm, bt]);
        const g2 = tf.grads(loss(c.ref))([c.x, gm, bt]);
        ['dx', 'dgamma', 'dbeta'].forEach((n, i) => assertNear(g1[i] as tf.Tensor, g2[i] as tf.Tensor, GRAD, `${c.what} ${n}`, true));
      }
    });

    it('fused GELU, GEGLU and SiLU: values <= 1e-5, gradients <= 1e-4', () => {
      const composedGelu = (x: tf.Tensor) => tf.mul(tf.mul(x, tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)), 0.5);
      const cases: { what: string; x: tf.Tensor; ours: (x: tf.Tensor) => tf.Tensor; ref: (x: tf.Tensor) => tf.Tensor }[] = [
        { what: 'gelu', x: randn([4, 33], 2.5), ours: gelu, ref: composedGelu },
        {
          what: 'geglu',
          x: randn([2, 5, 18], 2),
          ours: geglu,
          ref: (h) => {
            const [a, g] = tf.split(h, 2, -1) as [tf.Tensor, tf.Tensor];
            return tf.mul(a, composedGelu(g));
          },
        },
        { what: 'silu', x: randn([3, 4, 4, 6], 3), ours: silu, ref: (x) => tf.mul(x, tf.sigmoid(x)) },
      ];
      for (const c of cases) {
        const y = c.ours(c.x);
        assertNear(y, c.ref(c.x), FWD, `${c.what} value`);
        const r = randn(y.shape);
        const [g1] = tf.grads((x: tf.Tensor) => tf.sum(tf.mul(c.ours(x), r)))([c.x]);
        const [g2] = tf.grads((x: tf.Tensor) => tf.sum(tf.mul(c.ref(x), r)))([c.x]);
        assertNear(g1 as tf.Tensor, g2 as tf.Tensor, GRAD, `${c.what} gradient`, true);
      }
    });
  });
}

describe('memory-efficient attention: memory linear in the token count', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('doubling the tokens doubles the training peak (plain attention: about 4x)', async () => {
    const ours = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): tf.Tensor => memoryEfficientAttention(q, k, v, { heads: 2, chunk: 16 });
    const plain = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => referenceAttention(q, k, v, 2, 0.5, null);
    const measure = async (n: number, f: typeof ours) => {
      const x = randn([1, n, 8]);
      const p = await tf.profile(() => {
        const g = tf.grads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.sum(f(q, k, v)))([x, x, x]);
        tf.dispose(g);
      });
      x.dispose();
      return p.peakBytes;
    };
    const [o1, o2, p1, p2] = [await measure(256, ours), await measure(512, ours), await measure(256, plain), await measure(512, plain)];
    assert.ok(o2 / o1 < 2.5, `ours: peak ${o1} -> ${o2} bytes when tokens double (ratio ${(o2 / o1).toFixed(2)}, want ~2)`);
    assert.ok(p2 / p1 > 3.2, `plain reference: peak ${p1} -> ${p2} (ratio ${(p2 / p1).toFixed(2)}, want ~4: the measurement must see quadratic memory)`);
    console.log(`peak bytes, 256 -> 512 tokens: ours ${o1} -> ${o2}, plain ${p1} -> ${p2}`);
    assert.ok(o2 * 4 < p2, `ours at 512 tokens (${o2} bytes) should be far below plain (${p2})`);
  });

  it('eager steps run no recompute gate (it is for compiled steps only): no IsNan among the backward kernels', async () => {
    const x = randn([1, 64, 8]);
    const p = await tf.profile(() => {
      // 4 chunks of 16 queries: the backward recomputes each chunk's probabilities
      const g = tf.grads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.sum(memoryEfficientAttention(q, k, v, { heads: 2, chunk: 16 })))([x, x, x]);
      tf.dispose(g);
    });
    x.dispose();
    assert.ok(p.kernelNames.includes('BatchMatMul'), 'the profile saw the backward');
    assert.ok(!p.kernelNames.includes('IsNan'), `gate ops ran eagerly: ${p.kernelNames.join(', ')}`);
  });

  it('automatic chunk size: at most 2^22 scores per chunk, at least 64 queries, never more than there are', () => {
    assert.equal(attentionChunkSize(4, 4096, 4096), 256);
    assert.equal(attentionChunkSize(4, 100, 77), 100);
    assert.equal(attentionChunkSize(80, 16384, 16384), 64);
    assert.equal(attentionChunkSize(4, 4096, 4096, 300), 300);
    assert.equal(attentionChunkSize(4, 10, 4096, 300), 10);
  });
});
