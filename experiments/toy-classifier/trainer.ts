import * as tf from '@tensorflow/tfjs-core';
import { Rng, compileStep, type CompileMode, type CompiledStep } from '../../framework/api.js';
import type { BlobData } from './data.js';
import type { ClassifierLoss } from './loss.js';

export interface TrainerOptions {
  hidden: number;
  lr: number;
  seed: number;
  /** 'auto': run each step as one compiled TensorFlow function where the backend allows (native), else eagerly */
  compile?: CompileMode;
  /** where the compiled step's one-time notices go */
  log?: (line: string) => void;
}

type StepIn = { x: tf.Tensor2D; onehot: tf.Tensor2D; c1: tf.Scalar; c2: tf.Scalar };
type StepOut = { loss: tf.Tensor; pred: tf.Tensor };

const PARAMS = ['w1', 'b1', 'w2', 'b2'] as const;
type ParamName = (typeof PARAMS)[number];

/**
 * A 2-layer MLP (dims -> hidden, ReLU -> classes) trained with Adam. Backpropagation is
 * written out (two matmuls and a ReLU mask), so training needs only forward kernels; the
 * optimiser state lives in plain tensors that a checkpoint saves and restores exactly.
 */
export class MlpTrainer {
  readonly params: Record<ParamName, tf.Variable>;
  private readonly m: Record<ParamName, tf.Variable>;
  private readonly v: Record<ParamName, tf.Variable>;
  /** Adam steps taken (the bias correction needs it) */
  t = 0;
  private compiled?: { loss: ClassifierLoss; step: CompiledStep<StepIn, StepOut> };

  constructor(dims: number, classes: number, private readonly opts: TrainerOptions) {
    const rng = Rng.derive(opts.seed, 'toy-classifier', 'init');
    // He init for the ReLU layer, Glorot-like for the output layer
    const init = (shape: [number, number], std: number) => tf.tensor2d(rng.fillNormal(new Float32Array(shape[0] * shape[1]), 0, std) as Float32Array, shape);
    // tidy: a variable keeps its own reference to the data; the initial tensor is released
    const variable = (make: () => tf.Tensor) => tf.tidy(() => tf.variable(make()));
    this.params = {
      w1: variable(() => init([dims, opts.hidden], Math.sqrt(2 / dims))),
      b1: variable(() => tf.zeros([opts.hidden])),
      w2: variable(() => init([opts.hidden, classes], Math.sqrt(1 / opts.hidden))),
      b2: variable(() => tf.zeros([classes])),
    };
    const zerosLike = () => Object.fromEntries(PARAMS.map((p) => [p, variable(() => tf.zerosLike(this.params[p]))])) as Record<ParamName, tf.Variable>;
    this.m = zerosLike();
    this.v = zerosLike();
  }

  logits(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, this.params.w1), this.params.b1)), this.params.w2), this.params.b2) as tf.Tensor2D);
  }

  /**
   * One Adam step on (x, onehot); returns the batch loss and accuracy. The step's tensor work
   * is one function of its inputs (the bias corrections 1 - beta^t come in as scalar tensors,
   * so a compiled step does not freeze them), run through compileStep.
   */
  step(x: tf.Tensor2D, onehot: tf.Tensor2D, labels: Int32Array, loss: ClassifierLoss): { loss: number; accuracy: number } {
    this.t++;
    if (this.compiled?.loss !== loss) {
      this.compiled?.step.dispose();
      this.compiled = { loss, step: compileStep((i: StepIn) => this.stepOps(i, loss), { mode: this.opts.compile ?? 'auto', name: 'toy-classifier', log: this.opts.log }) };
    }
    const c1 = tf.scalar(1 - 0.9 ** this.t);
    const c2 = tf.scalar(1 - 0.999 ** this.t);
    const { loss: lossT, pred: predT } = this.compiled.step.call({ x, onehot, c1, c2 });
    const lossV = lossT.dataSync()[0];
    const pred = predT.dataSync();
    tf.dispose([lossT, predT, c1, c2]);
    let correct = 0;
    for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) correct++;
    return { loss: lossV, accuracy: correct / labels.length };
  }

  /** Run tags of the compiled step (compiled or eager, and why). */
  compileTags(): Record<string, string> {
    return this.compiled?.step.tags() ?? {};
  }

  private stepOps({ x, onehot, c1, c2 }: StepIn, loss: ClassifierLoss): StepOut {
    const { w1, b1, w2 } = this.params;
    const z = tf.add(tf.matMul(x, w1), b1);
    const h = tf.relu(z);
    const logits = tf.add(tf.matMul(h, w2), this.params.b2) as tf.Tensor2D;
    const { loss: l, dLogits } = loss.compute(logits, onehot);
    // backprop through logits = relu(x w1 + b1) w2 + b2
    const dz = tf.mul(tf.matMul(dLogits, w2, false, true), tf.step(z));
    this.adam({ w1: tf.matMul(x, dz, true, false), b1: tf.sum(dz, 0), w2: tf.matMul(h, dLogits, true, false), b2: tf.sum(dLogits, 0) }, c1, c2);
    return { loss: l, pred: tf.argMax(logits, 1) };
  }

  private adam(grads: Record<ParamName, tf.Tensor>, c1: tf.Scalar, c2: tf.Scalar): void {
    const b1 = 0.9;
    const b2 = 0.999;
    const eps = 1e-8;
    for (const p of PARAMS) {
      const g = grads[p];
      this.m[p].assign(tf.add(tf.mul(this.m[p], b1), tf.mul(g, 1 - b1)));
      this.v[p].assign(tf.add(tf.mul(this.v[p], b2), tf.mul(tf.square(g), 1 - b2)));
      const upd = tf.mul(tf.div(tf.div(this.m[p], c1), tf.add(tf.sqrt(tf.div(this.v[p], c2)), eps)), this.opts.lr);
      this.params[p].assign(tf.sub(this.params[p], upd));
    }
  }

  /** Everything a checkpoint needs, as plain arrays. */
  state(): Record<string, { shape: number[]; data: Float32Array }> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const p of PARAMS) {
      out[p] = { shape: this.params[p].shape, data: this.params[p].dataSync() as Float32Array };
      out[`adam.m.${p}`] = { shape: this.m[p].shape, data: this.m[p].dataSync() as Float32Array };
      out[`adam.v.${p}`] = { shape: this.v[p].shape, data: this.v[p].dataSync() as Float32Array };
    }
    return out;
  }

  load(state: Record<string, { shape: number[]; data: Float32Array }>, t: number, where: string): void {
    for (const p of PARAMS) {
      for (const [key, target] of [[p, this.params[p]], [`adam.m.${p}`, this.m[p]], [`adam.v.${p}`, this.v[p]]] as const) {
        const s = state[key];
        if (!s || s.shape.join('x') !== target.shape.join('x')) {
          throw new Error(`${where}: checkpoint tensor "${key}" is ${s ? `[${s.shape.join(', ')}]` : 'missing'}, the model needs [${target.shape.join(', ')}] (was the config changed?)`);
        }
        tf.tidy(() => target.assign(tf.tensor(s.data, s.shape)));
      }
    }
    this.t = t;
  }

  dispose(): void {
    this.compiled?.step.dispose();
    tf.dispose([...Object.values(this.params), ...Object.values(this.m), ...Object.values(this.v)]);
  }
}

/** Batch tensors for a set of sample indices (caller disposes). */
export function gatherBatch(data: BlobData, idx: Int32Array): { x: tf.Tensor2D; onehot: tf.Tensor2D; labels: Int32Array } {
  const x = new Float32Array(idx.length * data.dims);
  const labels = new Int32Array(idx.length);
  const oh = new Float32Array(idx.length * data.classes);
  for (let i = 0; i < idx.length; i++) {
    x.set(data.x.subarray(idx[i] * data.dims, (idx[i] + 1) * data.dims), i * data.dims);
    labels[i] = data.y[idx[i]];
    oh[i * data.classes + labels[i]] = 1;
  }
  return { x: tf.tensor2d(x, [idx.length, data.dims]), onehot: tf.tensor2d(oh, [idx.length, data.classes]), labels };
}
