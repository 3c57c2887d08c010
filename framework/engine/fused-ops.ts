import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op.js';
import { nativeOpsEnabled, nativeOpWithGrad, runNativeOp, type OpAttr } from './native-ops.js';

/**
 * Composite ops with hand-written gradients (tf.customGrad). Composed from primitives,
 * each of these keeps every intermediate its primitives' gradients need (a GroupNorm:
 * x - mean, the normalised tensor, the scaled one...; a GELU: x/sqrt2, erf, 1 + erf, ...),
 * several activation-sized tensors per call. Fused, each keeps only its input (plus
 * per-group statistics for the norms) and recomputes the rest in the backward pass.
 * Values equal the composed forms (the same primitives in the same order).
 */

const SQRT_2PI_INV = 1 / Math.sqrt(2 * Math.PI);

/** Exact (erf) GELU, torch's default: x * Phi(x). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return geluKernel(x);
}

const geluForward = (x: tf.Tensor): tf.Tensor => tf.mul(tf.mul(x, tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)), 0.5);
/** d/dx x Phi(x) = Phi(x) + x phi(x). */
const geluDerivative = (x: tf.Tensor): tf.Tensor =>
  tf.add(tf.mul(tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1), 0.5), tf.mul(x, tf.mul(tf.exp(tf.mul(tf.square(x), -0.5)), SQRT_2PI_INV)));

const geluKernel = customOp(([x], save) => {
  save([x as tf.Tensor]);
  return { value: geluForward(x as tf.Tensor), gradFunc: (dy, [xs]) => [tf.tidy(() => tf.mul(dy, geluDerivative(xs as tf.Tensor)))] };
});

/** GEGLU on a projection output [..., 2n]: value * gelu(gate) with value, gate its two halves -> [..., n]. */
export function geglu(h: tf.Tensor): tf.Tensor {
  if ((h.shape[h.rank - 1] as number) % 2 !== 0) throw new Error(`geglu: last dimension ${h.shape[h.rank - 1]} is odd`);
  if (nativeOpsEnabled() && h.size > 0) return nativeGeglu(h);
  return gegluKernel(h);
}

const gegluKernel = customOp(([h], save) => {
  save([h as tf.Tensor]);
  const value = tf.tidy(() => {
    const [a, g] = tf.split(h as tf.Tensor, 2, -1) as [tf.Tensor, tf.Tensor];
    return tf.mul(a, geluForward(g));
  });
  return {
    value,
    gradFunc: (dy, [hs]) => [
      tf.tidy(() => {
        const [a, g] = tf.split(hs as tf.Tensor, 2, -1) as [tf.Tensor, tf.Tensor];
        return tf.concat([tf.mul(dy, geluForward(g)), tf.mul(tf.mul(dy, a), geluDerivative(g))], -1);
      }),
    ],
  };
});

/** SiLU x * sigmoid(x); derivative s (1 + x (1 - s)). */
export function silu(x: tf.Tensor): tf.Tensor {
  if (nativeOpsEnabled() && x.size > 0) return nativeSilu(x);
  return siluKernel(x);
}

const siluKernel = customOp(([x], save) => {
  save([x as tf.Tensor]);
  return {
    value: tf.tidy(() => tf.mul(x as tf.Tensor, tf.sigmoid(x as tf.Tensor))),
    gradFunc: (dy, [xs]) => [
      tf.tidy(() => {
        const s = tf.sigmoid(xs as tf.Tensor);
        return tf.mul(dy, tf.mul(s, tf.add(tf.mul(xs as tf.Tensor, tf.sub(1, s)), 1)));
      }),
    ],
  };
});

/**
 * GEGLU and SiLU as one kernel each way (native/ops/activation.cc, loaded by native-ops.ts):
 * one pass over the activation where the composites above take a split and four element-wise
 * ops forward, a dozen backward. Each saves only its input, as the composites do.
 */
const nativeGeglu = nativeOpWithGrad('RassGeglu');
const nativeSilu = nativeOpWithGrad('RassSilu');

/**
 * Normalisation over `axes` of a grouped view `g` of x, then a per-channel affine. Shared by
 * GroupNorm (g: [B, S, G, C/G], axes [1, 3]) and LayerNorm (g = x, axes [-1]).
 * Backward: with xhat = (g - mean) rstd and dxhat = dy gamma (in g's view),
 * dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)); dgamma = sum(dy xhat), dbeta = sum(dy).
 */
function normalize(view: (x: tf.Tensor) => tf.Tensor, axes: number[], eps: number) {
  return customOp(([x, gamma, beta], save) => {
    if (!x || !gamma || !beta) throw new Error('normalize: needs x, gamma, beta');
    const [value, mean, rstd] = tf.tidy(() => {
      const g = view(x);
      const m = tf.moments(g, axes, true);
      const r = tf.rsqrt(tf.add(m.variance, eps));
      const y = tf.add(tf.mul(tf.reshape(tf.mul(tf.sub(g, m.mean), r), x.shape), gamma), beta);
      return [y, m.mean, r];
    });
    save([x, gamma, mean as tf.Tensor, rstd as tf.Tensor]);
    return {
      value: value as tf.Tensor,
      gradFunc: (dy, saved) =>
        tf.tidy(() => {
          const [xs, gs, ms, rs] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
          const xhat = tf.mul(tf.sub(view(xs), ms), rs);
          const lead = Array.from({ length: xs.rank - 1 }, (_, i) => i);
          const dBeta = tf.sum(dy, lead);
          const dGamma = tf.sum(tf.mul(dy, tf.reshape(xhat, xs.shape)), lead);
          const dxhat = view(tf.mul(dy, gs));
          const dx = tf.mul(rs, tf.sub(tf.sub(dxhat, tf.mean(dxhat, axes, true)), tf.mul(xhat, tf.mean(tf.mul(dxhat, xhat), axes, true))));
          return [tf.reshape(dx, xs.shape), dGamma, dBeta];
        }),
    };
  });
}

/**
 * The same normalisation as two TensorFlow kernels of this project's own (native/ops/norm.cc,
 * loaded by native-ops.ts; each direction two passes over the activation instead of a dozen):
 * x is samples of `rows` rows of C channels, normalised per sample and group of C / groups
 * channels. Saves x, gamma and the per-(sample, group) mean and 1/std, as the composite does.
 */
function nativeNormalize(groups: number, rows: number, eps: number) {
  const attrs: OpAttr[] = [
    { name: 'groups', kind: 'int', value: groups },
    { name: 'rows', kind: 'int', value: rows },
  ];
  return customOp(([x, gamma, beta], save) => {
    if (!x || !gamma || !beta) throw new Error('normalize: needs x, gamma, beta');
    const [y, mean, rstd] = runNativeOp('RassNorm', [...attrs, { name: 'eps', kind: 'float', value: eps }], [x, gamma, beta], 3) as [tf.Tensor, tf.Tensor, tf.Tensor];
    save([x, gamma, mean, rstd]);
    // the saved clones hold the statistics now
    tf.dispose([mean, rstd]);
    return { value: y, gradFunc: (dy, [xs, gs, ms, rs]) => runNativeOp('RassNormGrad', attrs, [dy, xs as tf.Tensor, gs as tf.Tensor, ms as tf.Tensor, rs as tf.Tensor], 3) };
  });
}

/** GroupNorm over channels-last x ([B, ..., C]): statistics per sample and group of C/groups channels. */
export function groupNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number): tf.Tensor {
  const b = x.shape[0] as number;
  const c = x.shape[x.rank - 1] as number;
  if (c % groups !== 0) throw new Error(`groupNorm: ${c} channels not divisible by ${groups} groups`);
  if (nativeOpsEnabled() && x.size > 0) return nativeNormalize(groups, x.size / (b * c), eps)(x, gamma, beta);
  return normalize((t) => tf.reshape(t, [b, -1, groups, c / groups]), [1, 3], eps)(x, gamma, beta);
}

/** LayerNorm over the last dimension. */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  if (nativeOpsEnabled() && x.size > 0) return nativeNormalize(1, 1, eps)(x, gamma, beta);
  return normalize((t) => t, [x.rank - 1], eps)(x, gamma, beta);
}
