import { hostPlan, tf, type CompileMode, type HeadOutput, type MaskPrediction, type PreparedSegLoss, type Rng, type SegTargets } from '../../framework/api.js';
import type { makeOptimizer } from '../common/train.js';
import { TrainStep } from '../common/train-step.js';
import type { Model, RassComponents, RassOptions } from './train.js';

/** A head output as named tensors (a compiled function returns a flat record) and back. */
export function flattenHead(out: HeadOutput): Record<string, tf.Tensor> {
  if (out.kind === 'per-pixel') return { logits: out.logits };
  const flat: Record<string, tf.Tensor> = { 'final/cls': out.final.classLogits, 'final/mask': out.final.maskLogits };
  out.aux.forEach((a, i) => Object.assign(flat, { [`aux${i}/cls`]: a.classLogits, [`aux${i}/mask`]: a.maskLogits }));
  return flat;
}

export function unflattenHead(flat: Record<string, tf.Tensor>): HeadOutput {
  if (flat.logits) return { kind: 'per-pixel', logits: flat.logits as tf.Tensor4D };
  const layer = (p: string): MaskPrediction => ({ classLogits: flat[`${p}/cls`] as tf.Tensor3D, maskLogits: flat[`${p}/mask`] as tf.Tensor4D });
  const aux: MaskPrediction[] = [];
  for (let i = 0; flat[`aux${i}/cls`]; i++) aux.push(layer(`aux${i}`));
  return { kind: 'mask-classification', final: layer('final'), aux };
}

/**
 * One RASS training step: backbone features (Seg LoRA), projections, head, segmentation loss,
 * gradients of every trainable variable, clipping by the global norm, AdamW.
 *
 * A loss with the SegLoss contract's prepare/computePrepared pair compiles (issue #21): its
 * host-side part (Mask2Former's Hungarian matching and uncertainty point selection read
 * values) cannot be inside a graph, so the step hands the head's outputs to `hostPlan`, where
 * `prepare` turns the matches and sampled points into tensors that computePrepared takes.
 * Compiled, the step becomes two TensorFlow functions split there (forward; then loss,
 * backward and update, reusing the forward's activations): one forward pass per step, and the
 * matcher sees the same weights as the gradient. Eagerly (compile: off, wasm/cpu, or once the
 * compiled path has fallen back) the step runs forward + compute, matching on that same
 * forward, as before.
 */
export class RassStep {
  private readonly step: TrainStep;
  /** the planned path (hostPlan + computePrepared) is on; false: compute() */
  private planned: boolean;
  private kept: tf.Tensor[] = [];
  /** why the step is eager although compile is auto (set before the first step) */
  private readonly eagerWhy?: string;
  /** the eager path's targets and random stream, set per call (its loss reads them inside the step) */
  private targets: SegTargets | null = null;
  private rng: Rng | null = null;

  constructor(
    private readonly o: RassOptions,
    private readonly c: RassComponents,
    private readonly m: Model,
    optimizer: ReturnType<typeof makeOptimizer>,
    log: (line: string) => void,
  ) {
    const hasPair = typeof c.loss.prepare === 'function' && typeof c.loss.computePrepared === 'function';
    let mode: CompileMode = o.compile ?? 'auto';
    if (mode !== 'off' && !hasPair) {
      this.eagerWhy = `the loss "${c.loss.type}" has no prepare/computePrepared (SegLoss contract), so its host-side part cannot be split from the step`;
      log(`compile rass: runs eagerly (${this.eagerWhy})`);
      mode = 'off';
    }
    // off the native backend compileStep runs eagerly and says why; compute() is then the plain path
    this.planned = mode !== 'off' && tf.getBackend() === 'tensorflow';
    this.step = new TrainStep(m.vars, optimizer, o.clip_grad_norm, (inputs) => this.loss(inputs), { mode, name: 'rass', log });
  }

  private headOutput(inputs: Record<string, tf.Tensor>): HeadOutput {
    const feats = this.c.backbone.features(inputs.input as tf.Tensor4D, inputs.context as tf.Tensor3D, this.o.features);
    this.kept.push(...feats.values()); // taps outlive the tidy they were made in
    return this.c.head.forward(this.m.projector.levels(feats), { training: true });
  }

  private loss(inputs: Record<string, tf.Tensor>): { loss: tf.Scalar; terms: Record<string, tf.Scalar> } {
    const out = this.headOutput(inputs);
    let l;
    if (this.planned) {
      const prep: PreparedSegLoss = hostPlan(flattenHead(out));
      l = (this.c.loss.computePrepared as NonNullable<typeof this.c.loss.computePrepared>)(out, prep);
    } else {
      l = this.c.loss.compute(out, this.targets as SegTargets, this.rng as Rng);
    }
    const terms: Record<string, tf.Scalar> = {};
    // deep-supervision terms are summed into the loss but not logged one by one
    for (const [k, t] of Object.entries(l.terms)) if (!/_aux\d+$|\d$/.test(k)) terms[`loss/${k}`] = t;
    return { loss: l.total, terms };
  }

  /** One update on this batch; returns loss, grad_norm and the logged loss terms. */
  run(input: tf.Tensor4D, context: tf.Tensor3D, targets: SegTargets, rng: Rng): Record<string, number> {
    try {
      this.targets = targets;
      this.rng = rng;
      const loss = this.c.loss;
      const r = this.step.run({ input, context }, this.planned ? (flat) => loss.prepare!(unflattenHead(flat), targets, rng) : undefined);
      const values: Record<string, number> = { loss: r.loss, grad_norm: r.gradNorm, ...r.terms };
      // a step that could not compile after all (e.g. LoRA dropout draws a seed per call) falls
      // back to compute(), the loss's own eager path
      if (this.planned && this.step.status().state === 'eager') this.planned = false;
      return values;
    } finally {
      tf.dispose(this.kept);
      this.kept = [];
      this.targets = null;
      this.rng = null;
    }
  }

  tags(): Record<string, string> {
    const tags = this.step.tags();
    if (this.eagerWhy) tags['rass.compile.rass.reason'] = this.eagerWhy;
    return tags;
  }

  dispose(): void {
    this.step.dispose();
  }
}
