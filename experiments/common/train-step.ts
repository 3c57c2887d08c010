import { clipCoefficient, compileStep, pickScalars, scalarInputs, tf, type CompileMode, type CompileStatus, type CompiledStep, type Optimizer, type Planner } from '../../framework/api.js';

/** The `compile` option of the experiments whose steps run through compileStep (`extra`: when else the step stays eager). */
export function compileOptionSchema(extra = '') {
  return {
    enum: ['auto', 'off', 'xla'],
    default: 'auto',
    description: `auto: each training step runs as one compiled TensorFlow function on the native backend (eager elsewhere${extra}; the reason logged once and tagged); off: always eager; xla: as auto, and the compiled function runs through XLA (faster for steps of many small ops, e.g. RASS and SCR on small priors; slower where large convolutions dominate, about twice the peak memory; a step XLA refuses runs as plain compiled, said once and tagged)`,
  } as const;
}

/** What one optimiser step reports: the loss, the gradient norm before clipping, named scalar terms. */
export interface StepReport {
  loss: number;
  gradNorm: number;
  terms: Record<string, number>;
}

/** The loss of one step from its input tensors: the scalar to minimise and named scalars to log. */
export type StepLoss = (inputs: Record<string, tf.Tensor>) => { loss: tf.Scalar; terms?: Record<string, tf.Scalar> };

/**
 * One training step — gradients of `loss` for `vars` (parameter name -> variable), global-norm
 * clipping, one optimiser update — as a single function of its input tensors, run through
 * `compileStep`: on the native backend it becomes one registered TensorFlow function after
 * two agreeing recordings, elsewhere (or with `compile: off`) it runs eagerly with the same
 * arithmetic. So the step is written for compilation: the clipping keeps the norm a tensor, the
 * optimiser's per-step numbers (learning rate, bias corrections) come in as scalar inputs,
 * and everything random must be drawn in JS and passed in as an input (a seed inside the
 * step would be frozen into the graph).
 */
export class TrainStep {
  private readonly step: CompiledStep<Record<string, tf.Tensor>, Record<string, tf.Tensor>>;
  private readonly byVarName: Map<string, string>;

  constructor(
    private readonly vars: Record<string, tf.Variable>,
    private readonly opt: Optimizer,
    maxNorm: number,
    loss: StepLoss,
    o: { mode: CompileMode; name: string; log?: (line: string) => void },
  ) {
    this.byVarName = new Map(Object.entries(vars).map(([k, v]) => [v.name, k]));
    const varList = Object.values(vars);
    this.step = compileStep(
      (inputs: Record<string, tf.Tensor>) => {
        const kept: Record<string, tf.Tensor> = {};
        const { value, grads } = tf.variableGrads(() => {
          const r = loss(inputs);
          // tf.keep: the gradient recording tidies everything its function made except the loss
          for (const [k, t] of Object.entries(r.terms ?? {})) kept[`term/${k}`] = tf.keep(t);
          return r.loss;
        }, varList);
        const named: Record<string, tf.Tensor> = {};
        for (const [vn, g] of Object.entries(grads)) named[this.byVarName.get(vn) as string] = g;
        // the clipping coefficient scales the gradients inside the update (one fused op on native)
        const { norm, coef } = clipCoefficient(named, maxNorm);
        this.opt.applyHyper(named, pickScalars(inputs), coef);
        tf.dispose([...Object.values(grads), coef]);
        return { loss: value, gradNorm: norm, ...kept };
      },
      { mode: o.mode, name: o.name, ...(o.log ? { log: o.log } : {}) },
    );
  }

  /**
   * One update on these inputs (the caller keeps and disposes them). `planner`: for a loss that
   * calls hostPlan (a host step inside the step; compiled, the step splits there).
   */
  run(inputs: Record<string, tf.Tensor>, planner?: Planner): StepReport {
    const hyper = scalarInputs(this.opt.hyper());
    const out = this.step.call({ ...inputs, ...hyper }, planner);
    this.opt.advance();
    const read = (t: tf.Tensor | undefined) => (t ? (t.dataSync()[0] as number) : NaN);
    const terms: Record<string, number> = {};
    for (const [k, t] of Object.entries(out)) if (k.startsWith('term/')) terms[k.slice(5)] = read(t);
    const report = { loss: read(out.loss), gradNorm: read(out.gradNorm), terms };
    tf.dispose([...Object.values(out), ...Object.values(hyper)]);
    return report;
  }

  /** Run tags: whether the step runs compiled, and why not. */
  tags(): Record<string, string> {
    return this.step.tags();
  }

  status(): CompileStatus {
    return this.step.status();
  }

  dispose(): void {
    this.step.dispose();
  }
}
