import * as tf from '@tensorflow/tfjs-core';
import { nativeOpsEnabled, runNativeOp } from './native-ops.js';
import { lrAt, type ScheduleSpec } from './schedules.js';

/**
 * Optimisers over named tf.Variables with torch semantics (the RASS recipe is torch's):
 * - AdamW (torch.optim.AdamW): decoupled decay p *= 1 - lr*wd, then Adam with bias
 *   correction, eps added to sqrt(v)/sqrt(1-b2^t);
 * - SGD with momentum (torch.optim.SGD): coupled decay g += wd*p, buf = mu*buf + g
 *   (buf = g on the first step), optional Nesterov.
 * Parameter groups give each variable an lr multiplier and a weight decay (the first group
 * whose names/pattern match wins; others use the defaults). All updates run inside tf.tidy.
 */
export interface ParamGroup {
  name?: string;
  /** variable names, or a regular expression source matched against the full name */
  params: string[] | string;
  lr_mult?: number;
  weight_decay?: number;
}

export interface OptimizerOptions {
  type: 'adamw' | 'sgd';
  /** base learning rate; each group runs the schedule from lr * lr_mult (as torch schedulers do per group) */
  lr?: number;
  schedule?: ScheduleSpec;
  weight_decay?: number;
  betas?: [number, number];
  eps?: number;
  momentum?: number;
  nesterov?: boolean;
  groups?: ParamGroup[];
}

export interface OptimizerState {
  step: number;
  slots: Record<string, { shape: number[]; data: Float32Array }>;
}

/** Values per fused AdamW op (16M: 192 MB of new parameters and moments in flight at most); tests lower it. */
export const fusedAdamW = { batch: 1 << 24 };

export class Optimizer {
  private readonly slots = new Map<string, tf.Variable[]>();
  private readonly settings = new Map<string, { lrMult: number; wd: number }>();
  private stepCount = 0;

  constructor(private readonly vars: Record<string, tf.Variable>, private readonly o: OptimizerOptions) {
    const groups = o.groups ?? [];
    for (const name of Object.keys(vars)) {
      const g = groups.find((gr) => (Array.isArray(gr.params) ? gr.params.includes(name) : new RegExp(`^(?:${gr.params})$`).test(name)));
      this.settings.set(name, { lrMult: g?.lr_mult ?? 1, wd: g?.weight_decay ?? o.weight_decay ?? 0 });
    }
    for (const [i, g] of groups.entries()) {
      const hit = Object.keys(vars).some((n) => (Array.isArray(g.params) ? g.params.includes(n) : new RegExp(`^(?:${g.params})$`).test(n)));
      if (!hit) throw new Error(`optimizer group ${g.name ?? i} matches no parameter (${JSON.stringify(g.params)})`);
    }
  }

  get step(): number {
    return this.stepCount;
  }

  private slotsOf(name: string, v: tf.Variable): tf.Variable[] {
    let s = this.slots.get(name);
    if (!s) {
      const n = this.o.type === 'adamw' ? 2 : 1;
      // tidy: the variable keeps the zeros' data; the zeros tensor itself would stay allocated
      s = Array.from({ length: n }, () => tf.tidy(() => tf.variable(tf.zerosLike(v), false)));
      this.slots.set(name, s);
    }
    return s;
  }

  /** The learning rate a group with `lrMult` uses at the next step (the schedule at step = updates so far). */
  lrFor(lrMult = 1): number {
    return lrAt(this.stepCount, (this.o.lr ?? 1e-3) * lrMult, this.o.schedule ?? { type: 'constant' });
  }

  /**
   * One update. Without `lr`, each group's learning rate comes from the schedule (started
   * from lr * lr_mult, so e.g. a cosine floor `min_lr` is shared by all groups, as in torch);
   * an explicit `lr` is scaled by each group's lr_mult instead.
   */
  apply(grads: Record<string, tf.Tensor>, lr?: number): void {
    const h = this.hyper(lr);
    this.applyHyper(grads, h);
    this.advance();
  }

  /**
   * The numbers the next update computes in JS from the step count and the schedule (per
   * distinct lr_mult/weight-decay setting): learning rates, 1 - lr*wd, Adam's bias
   * corrections. A compiled training step (engine/compile.ts)
   * takes them as scalar input tensors, so the recorded graph does not freeze them; `apply`
   * passes them as numbers. Same arithmetic either way.
   */
  hyper(lr?: number): Record<string, number> {
    const done = this.stepCount; // the schedule is read at the step being taken, before counting it
    const t = done + 1;
    const [b1, b2] = this.o.betas ?? [0.9, 0.999];
    const h: Record<string, number> = {};
    for (const [key, { lrMult, wd }] of this.settingKeys()) {
      const glr = lr === undefined ? lrAt(done, (this.o.lr ?? 1e-3) * lrMult, this.o.schedule ?? { type: 'constant' }) : lr * lrMult;
      if (this.o.type === 'adamw') {
        if (wd) h[`decay/${key}`] = 1 - glr * wd;
        h[`step/${key}`] = glr / (1 - b1 ** t);
      } else {
        h[`lr/${key}`] = glr;
      }
    }
    if (this.o.type === 'adamw') h.sqrt_c2 = Math.sqrt(1 - b2 ** t);
    return h;
  }

  /** Count one update (the schedule and bias corrections advance); `apply` does it itself. */
  advance(): void {
    this.stepCount++;
  }

  /**
   * One update with the per-step numbers from `hyper()`, as numbers or scalar tensors; does not
   * count the step. `scale` (global-norm clipping's coefficient) multiplies every gradient first.
   */
  applyHyper(grads: Record<string, tf.Tensor>, h: Record<string, number | tf.Scalar>, scale?: tf.Scalar): void {
    const [b1, b2] = this.o.betas ?? [0.9, 0.999];
    const eps = this.o.eps ?? 1e-8;
    const mu = this.o.momentum ?? 0;
    const get = (k: string) => {
      const v = h[k];
      if (v === undefined) throw new Error(`optimizer: hyper-parameter "${k}" missing (take them from hyper())`);
      return v;
    };
    const entries = Object.entries(grads).map(([name, g]) => {
      const p = this.vars[name];
      if (!p) throw new Error(`optimizer: gradient for unknown parameter "${name}"`);
      return { name, g, p, wd: this.settings.get(name)!.wd, key: this.settingKey(name), s: this.slotsOf(name, p) };
    });
    if (this.o.type === 'adamw' && entries.length > 0 && nativeOpsEnabled()) {
      // one op per batch of at most fusedAdamW.batch values: the op holds every old and new
      // parameter and moment of its batch at once, so a full fine-tune's update stays bounded
      let batch: typeof entries = [];
      let size = 0;
      for (const e of entries) {
        if (batch.length && size + e.p.size > fusedAdamW.batch) {
          this.adamwFused(batch, get, scale);
          batch = [];
          size = 0;
        }
        batch.push(e);
        size += e.p.size;
      }
      this.adamwFused(batch, get, scale);
      return;
    }
    for (const { g: grad, p, wd, key, s } of entries) {
      tf.tidy(() => {
        const g = scale ? tf.mul(grad, scale) : grad;
        if (this.o.type === 'adamw') {
          const [m, v] = s;
          const decayed = wd ? tf.mul(p, get(`decay/${key}`)) : p;
          m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
          v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
          const denom = tf.add(tf.div(tf.sqrt(v), get('sqrt_c2')), eps);
          p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), get(`step/${key}`))));
        } else {
          const [buf] = s;
          const d = wd ? tf.add(g, tf.mul(p, wd)) : g;
          let upd: tf.Tensor = d;
          if (mu) {
            // torch sets buf = g on the first step; buf starts at zero, so mu*0 + g is exactly g
            // and one formula serves every step (no branch on the step count in the graph)
            buf.assign(tf.add(tf.mul(buf, mu), d));
            upd = this.o.nesterov ? tf.add(d, tf.mul(buf, mu)) : buf;
          }
          p.assign(tf.sub(p, tf.mul(upd, get(`lr/${key}`))));
        }
      });
    }
  }

  /**
   * The AdamW update above as one op for every parameter (RassAdamW, native/ops/optimizer.cc) on
   * the native backend: the same arithmetic in the same order, each operation rounded to float
   * as the composite's ops round it, so the values are equal to the bit; one op where the
   * composite takes fifteen per parameter tensor (a dispatch each in an eager step, a node each
   * in a compiled one). No weight decay is a decay factor of exactly 1 (p * 1 = p).
   */
  private adamwFused(entries: { g: tf.Tensor; p: tf.Variable; wd: number; key: string; s: tf.Variable[] }[], get: (k: string) => number | tf.Scalar, scale?: tf.Scalar): void {
    const [b1, b2] = this.o.betas ?? [0.9, 0.999];
    tf.tidy(() => {
      const scalars = new Map<string, tf.Scalar>();
      const scalar = (k: string, v: number | tf.Scalar) => {
        if (typeof v !== 'number') return v;
        let t = scalars.get(k);
        if (!t) scalars.set(k, (t = tf.scalar(v)));
        return t;
      };
      const one = () => scalar('one', 1);
      const decay = entries.map((e) => (e.wd ? scalar(`decay/${e.key}`, get(`decay/${e.key}`)) : one()));
      const step = entries.map((e) => scalar(`step/${e.key}`, get(`step/${e.key}`)));
      const inputs = [
        ...entries.map((e) => e.p),
        ...entries.map((e) => e.s[0]!),
        ...entries.map((e) => e.s[1]!),
        ...entries.map((e) => e.g),
        ...decay,
        ...step,
        scale ?? one(),
        scalar('sqrt_c2', get('sqrt_c2')),
      ];
      const n = entries.length;
      const out = runNativeOp(
        'RassAdamW',
        [
          { name: 'N', kind: 'int', value: n },
          { name: 'beta1', kind: 'float', value: b1 },
          { name: 'one_minus_beta1', kind: 'float', value: 1 - b1 },
          { name: 'beta2', kind: 'float', value: b2 },
          { name: 'one_minus_beta2', kind: 'float', value: 1 - b2 },
          { name: 'eps', kind: 'float', value: this.o.eps ?? 1e-8 },
        ],
        inputs,
        3 * n,
      );
      entries.forEach((e, i) => {
        e.p.assign(out[i]!);
        e.s[0]!.assign(out[n + i]!);
        e.s[1]!.assign(out[2 * n + i]!);
      });
    });
  }

  private settingKey(name: string): string {
    const { lrMult, wd } = this.settings.get(name)!;
    return `${lrMult}_${wd}`;
  }

  private settingKeys(): Map<string, { lrMult: number; wd: number }> {
    const out = new Map<string, { lrMult: number; wd: number }>();
    for (const name of Object.keys(this.vars)) out.set(this.settingKey(name), this.settings.get(name)!);
    return out;
  }

  getState(): OptimizerState {
    const slots: OptimizerState['slots'] = {};
    for (const [name, s] of this.slots) s.forEach((v, i) => (slots[`${name}/${i}`] = { shape: v.shape, data: v.dataSync() as Float32Array }));
    return { step: this.stepCount, slots };
  }

  setState(state: OptimizerState): void {
    this.stepCount = state.step;
    for (const [key, { shape, data }] of Object.entries(state.slots)) {
      const [name, idx] = [key.slice(0, key.lastIndexOf('/')), Number(key.slice(key.lastIndexOf('/') + 1))];
      const p = this.vars[name];
      if (!p) throw new Error(`optimizer state: unknown parameter "${name}"`);
      const s = this.slotsOf(name, p);
      if (!s[idx]) throw new Error(`optimizer state: slot ${key} does not exist for ${this.o.type}`);
      const slot = s[idx];
      tf.tidy(() => slot.assign(tf.tensor(data, shape)));
    }
  }

  dispose(): void {
    for (const s of this.slots.values()) tf.dispose(s);
    this.slots.clear();
  }
}

/**
 * The sum of every gradient's squared values: one op on native (RassSumSquares, summed in
 * double in a fixed order), else a Square and a Sum per tensor and an AddN.
 */
function sumOfSquares(grads: tf.Tensor[]): tf.Tensor {
  if (grads.length > 0 && nativeOpsEnabled()) return runNativeOp('RassSumSquares', [{ name: 'N', kind: 'int', value: grads.length }], grads, 1)[0]!;
  return tf.addN(grads.map((g) => tf.sum(tf.square(g))));
}

/**
 * torch.nn.utils.clip_grad_norm_: scale every gradient by min(1, max_norm/(total+1e-6)),
 * total = the global L2 norm over all of them. Returns new tensors (callers dispose) and the norm.
 */
export function clipByGlobalNorm(grads: Record<string, tf.Tensor>, maxNorm: number): { grads: Record<string, tf.Tensor>; norm: number } {
  const norm = tf.tidy(() => tf.sqrt(sumOfSquares(Object.values(grads))).dataSync()[0]);
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  const out: Record<string, tf.Tensor> = {};
  for (const [k, g] of Object.entries(grads)) out[k] = tf.mul(g, coef);
  return { grads: out, norm };
}

/**
 * clipByGlobalNorm without a host read: the same arithmetic with the norm and the coefficient
 * kept as tensors, so it can sit inside a compiled step (engine/compile.ts), where a dataSync
 * would force eager execution. Returns new tensors (callers dispose), the norm included.
 */
export function clipByGlobalNormTensor(grads: Record<string, tf.Tensor>, maxNorm: number): { grads: Record<string, tf.Tensor>; norm: tf.Scalar } {
  const { norm, coef } = clipCoefficient(grads, maxNorm);
  const out: Record<string, tf.Tensor> = {};
  for (const [k, g] of Object.entries(grads)) out[k] = tf.mul(g, coef);
  coef.dispose();
  return { grads: out, norm };
}

/**
 * The global norm and clipping coefficient min(1, max_norm / (norm + 1e-6)) as tensors, without
 * scaling the gradients: `Optimizer.applyHyper(grads, h, coef)` applies it inside the update
 * (one fused op on native). The caller disposes both.
 */
export function clipCoefficient(grads: Record<string, tf.Tensor>, maxNorm: number): { norm: tf.Scalar; coef: tf.Scalar } {
  const norm = tf.tidy(() => tf.sqrt(sumOfSquares(Object.values(grads))) as tf.Scalar);
  const coef = tf.tidy(() => tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6))) as tf.Scalar);
  return { norm, coef };
}
