import * as tf from '@tensorflow/tfjs-core';
import { createHash } from 'node:crypto';
import { inGatherBoundsCheck } from './native-kernels.js';
import { withoutNativeOps } from './native-ops.js';
import { compileDumpDir, dumpFunction } from './compile-dump.js';

/**
 * Compiled training steps on the native TensorFlow backend (issue #21).
 *
 * `compileStep(fn)` records the ops tfjs executes during one call of `fn` (forward, the
 * gradients tfjs computes, the optimiser's updates: everything goes through the native
 * binding's executeOp) as a straight-line program, registers it as one TensorFlow function
 * in the binding's eager context (the `registerFunction` entry point that
 * native/patches/tfjs-node-register-function.patch adds), and later calls run that function as
 * a single op: no per-op JS -> N-API -> TFE_Execute round trip, no tfjs bookkeeping or tape,
 * and Grappler prunes/fuses the graph.
 *
 * What the program is made of:
 * - `fn`'s input tensors and every tf.Variable the step reads are function inputs (variables
 *   by identity, so their current value is passed on each call);
 * - tensors created from JS values during the step (tf.scalar(0.9), tf.zeros(...)) become
 *   Const nodes; tensors that existed before the step and are neither inputs nor variables are
 *   captured as constants too (frozen at compile time: a tensor that changes between steps
 *   must be an input or a variable);
 * - `fn`'s returned tensors and the final value of every variable the step assigned are the
 *   outputs; a compiled call assigns the variables and returns the rest.
 *
 * Because constants are baked in, a value computed in JS that changes between steps (a
 * learning-rate schedule, Adam's 1 - beta^t, random numbers drawn in JS) would be frozen.
 * The recorder therefore compiles only when two consecutive recordings produce the same
 * program (same ops, attrs, constant values, variables and outputs); while they differ it
 * keeps recording (a step that creates optimiser slots on its first call settles on the
 * second), and after MAX_RECORDINGS differing recordings the step stays eager, saying which
 * node differs. Pass such values as input tensors instead.
 *
 * Host reads: a dataSync/arraySync of a tensor computed inside the step (a loss printed
 * mid-step) cannot be part of a graph; such a step falls back to eager execution (reason logged
 * once and kept for the run tags). Read results after the call instead. The one host step a
 * compiled step may contain is a *plan*: the step calls `hostPlan(tensors)` once, the caller
 * passes the planner to `call(inputs, planner)`, and the planner reads those tensors on the
 * host and returns new tensors the rest of the step uses (Mask2Former's Hungarian matching and
 * point sampling). Such a step compiles into two functions split at the plan: everything that
 * does not depend on the planner's tensors (the forward pass) runs first and returns the
 * tensors the planner reads plus every value the rest needs; the planner runs in JS; then the
 * rest (loss, backward, update) runs as the second function. The planner's tensors are inputs
 * of the second function: no gradient flows through them (build them from host values).
 *
 * Fallbacks (the step then runs eagerly, exactly as without compileStep): `mode: 'off'`;
 * any backend other than "tensorflow" (wasm, cpu); a native binding built without the patch;
 * a host read; an op TensorFlow refuses in a graph; a program that never settles.
 * Each signature (input names, shapes and dtypes) is recorded and compiled separately.
 *
 * `mode: 'xla'` compiles the same way and then runs each registered function through XLA
 * (`_XlaMustCompile` on the call): XLA fuses the many small element-wise ops of a step into a
 * few loops, which pays where a step is made of small ops (measured: the RASS step 1.8x and the
 * SCR step 1.5x faster than the plain compiled function) and costs where large convolutions
 * dominate (the tiny UNet at a 64x64 latent ran 1.6x slower) and in memory (XLA's compiler and
 * executables: peak RSS about twice). A function XLA refuses (an op without an XLA kernel,
 * e.g. ResizeNearestNeighborGrad) runs as the plain compiled function, said once and tagged.
 */
export type CompileMode = 'auto' | 'off' | 'xla';
export const COMPILE_MODES: readonly CompileMode[] = ['auto', 'off', 'xla'];

export type StepInputs = Record<string, tf.Tensor>;
export type StepOutputs = Record<string, tf.Tensor>;

export interface CompileStepOptions {
  /** 'auto' (default): compile where possible, else eager with the reason; 'off': always eager; 'xla': as auto, run through XLA. */
  mode?: CompileMode;
  /** Name used in log lines and the registered function's name. */
  name?: string;
  /** Where the one-time fallback/compile notices go (default: console.log with a "[rass] " prefix; a run's logger adds its own). */
  log?: (line: string) => void;
}

export interface CompileStatus {
  /** 'compiled' once some signature runs compiled; 'eager' with `reason` otherwise; 'recording' before it settles. */
  state: 'compiled' | 'eager' | 'recording';
  reason?: string;
  /** Signatures seen, compiled calls, eager calls (recordings included). */
  signatures: number;
  compiledCalls: number;
  eagerCalls: number;
  /** mode 'xla' only: 'on' while XLA runs every compiled function; 'refused' with `xlaReason` once it refused one. */
  xla?: 'on' | 'refused';
  xlaReason?: string;
  /** The latest compiled signature's convolution and matrix-product work per call, in FLOPs (`denseFlops`). */
  flops?: number;
}

const MAX_RECORDINGS = 4;

/** The native binding (tfjs-node) as this module uses it. */
interface TensorInfo {
  id: number;
  shape: number[];
  dtype: number;
}
interface OpAttr {
  name: string;
  type: number;
  value: unknown;
}
interface Binding {
  executeOp(name: string, attrs: OpAttr[], inputs: number[], numOutputs: number): TensorInfo[];
  createTensor(shape: number[], dtype: number, values: unknown): number;
  deleteTensor(id: number): void;
  tensorDataSync(id: number): ArrayLike<number>;
  registerFunction?(name: string, nodes: GraphNode[], inputs: number[], outputs: number[]): number;
  removeFunction?(name: string): void;
  TF_FLOAT: number;
  TF_INT32: number;
  TF_BOOL: number;
  TF_ATTR_BOOL: number;
  TF_ATTR_TYPE: number;
  TF_ATTR_SHAPE: number;
}
interface NativeBackend {
  binding: Binding;
  getInputTensorIds(tensors: tf.Tensor[]): number[];
  createOutputTensor(info: TensorInfo): tf.Tensor;
}

/** One node as registerFunction takes it: inputs are flat [node, output] pairs. */
interface GraphNode {
  op: string;
  attrs: OpAttr[];
  inputs: number[];
  /** Const nodes: the binding tensor holding the value. */
  tensor?: number;
  /** Const nodes: the value's shape (only RASS_COMPILE_DUMP reads it) */
  shape?: number[];
}

/** binding.registerFunction, writing the function out first under RASS_COMPILE_DUMP (compile-dump.ts). */
function registerFunction(b: Binding, name: string, nodes: GraphNode[], inputs: number[], outputs: number[]): number {
  const dir = compileDumpDir();
  if (dir) dumpFunction(dir, b, name, nodes, inputs, outputs);
  return b.registerFunction!(name, nodes, inputs, outputs);
}

/** The host step of a planned step: reads the tensors the step hands to `hostPlan`, returns new ones. */
export type Planner = (tensors: Record<string, tf.Tensor>) => Record<string, tf.Tensor>;

type Source =
  | { kind: 'input'; key: string }
  | { kind: 'variable'; variable: tf.Variable }
  /** a tensor the planner returned (second segment of a planned step) */
  | { kind: 'plan'; key: string }
  /** the index-th value the first segment hands to the second */
  | { kind: 'cut'; index: number };

/** A recorded step. */
interface Program {
  nodes: GraphNode[];
  /** per node, what identifies it across recordings (op, attrs, inputs, constant value) */
  keys: string[];
  /** Placeholder node index -> where its value comes from on each call */
  params: { node: number; source: Source }[];
  outputs: { key: string; ref: [number, number] }[];
  assigns: { variable: tf.Variable; ref: [number, number] }[];
  /** the tensors handed to hostPlan (a planned step), by key */
  planOutputs: { key: string; ref: [number, number] }[];
  /** dtype (binding enum) and shape of each op output, by "node:index" (the split needs them) */
  meta: Map<string, { shape: number[]; dtype: number }>;
  /** binding tensors this module owns (constants kept alive until registration) */
  owned: number[];
  /** why this recording cannot be compiled, if it cannot */
  blocker?: string;
  /** multiply-add work of the step's convolutions and matrix products, in FLOPs (denseFlops) */
  flops: number;
}

/** One registered function: its name, output count and where each of its inputs comes from. */
interface Segment {
  fnName: string;
  numOutputs: number;
  params: Source[];
}

/** A planned step as two functions: `first` returns the plan's tensors (planKeys), then the cut values. */
interface SplitStep {
  first: Segment;
  planKeys: string[];
  /** returns the step's outputs (by key), then the variables' new values */
  second: Segment;
  /** the recorded shape of each planner tensor the second function takes */
  planShapes: Record<string, string>;
  outputs: string[];
  assigns: tf.Variable[];
}

interface Entry {
  last?: Program;
  recordings: number;
  fnName?: string;
  numOutputs?: number;
  program?: Program;
  split?: SplitStep;
  failed?: string;
}

/**
 * Whether a compiled step is being recorded right now: code that only matters in the recorded
 * graph (recompute-gate.ts) skips its ops in eager steps.
 */
export function recordingStep(): boolean {
  return recordingPlan !== null;
}

/** The planner of the call in progress (hostPlan hands it the step's tensors). */
let currentPlanner: Planner | null = null;
/** While a recording runs: how hostPlan records the plan instead of running it blindly. */
let recordingPlan: ((tensors: Record<string, tf.Tensor>, planner: Planner) => Record<string, tf.Tensor>) | null = null;

/**
 * Inside a step function: hand `tensors` to the planner the caller passed to `call(inputs,
 * planner)` and return its tensors (see the module comment). At most once per step.
 */
export function hostPlan(tensors: Record<string, tf.Tensor>): Record<string, tf.Tensor> {
  const planner = currentPlanner;
  if (!planner) throw new Error('hostPlan: the step was called without a planner (CompiledStep.call(inputs, planner))');
  return recordingPlan ? recordingPlan(tensors, planner) : planner(tensors);
}

function withPlanner<T>(planner: Planner | undefined, f: () => T): T {
  const prev = currentPlanner;
  currentPlanner = planner ?? null;
  try {
    return f();
  } finally {
    currentPlanner = prev;
  }
}

/** The loaded native backend, or why there is none (for fallbacks and `rass doctor`). */
export function nativeCompileSupport(): { ok: true; backend: NativeBackend } | { ok: false; why: string } {
  const name = tf.getBackend();
  if (name !== 'tensorflow') return { ok: false, why: `backend "${name}" has no compiled steps (native TensorFlow only)` };
  const backend = tf.backend() as unknown as Partial<NativeBackend>;
  const binding = backend.binding;
  if (!binding || typeof binding.executeOp !== 'function') return { ok: false, why: 'the tensorflow backend exposes no native binding' };
  if (typeof binding.registerFunction !== 'function') {
    return { ok: false, why: 'the native binding lacks registerFunction (built without native/patches; rerun `npm run setup:native`)' };
  }
  return { ok: true, backend: backend as NativeBackend };
}

let fnCounter = 0;

/**
 * The reason in a TensorFlow error from an XLA compilation, shortened for a log line and a tag:
 * the binding's text is "Invalid TF_Status: 3\nMessage: Detected unsupported operations ...: Op
 * (No registered 'Op' OpKernel for XLA_CPU_JIT ...)" followed by a stack of graph names.
 */
export function xlaRefusal(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const m = /Message: ([^\n]*)/.exec(text);
  const line = (m ? m[1]! : text.split('\n')[0]!).replace(/\{\{node [^}]*\}\}/g, '').trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

export class CompiledStep<I extends StepInputs = StepInputs, O extends StepOutputs = StepOutputs> {
  private readonly entries = new Map<string, Entry>();
  private readonly logged = new Set<string>();
  private readonly mode: CompileMode;
  private readonly name: string;
  private readonly log: (line: string) => void;
  private compiledCalls = 0;
  private eagerCalls = 0;
  private flops?: number;
  private reason?: string;
  /** mode 'xla': registered functions XLA refused (they run plain), with the reason. */
  private readonly xlaRefused = new Map<string, string>();
  /** mode 'xla': functions that have run through XLA once (the first call includes XLA's compilation). */
  private readonly xlaRan = new Set<string>();

  private readonly fn: (inputs: I) => O;

  constructor(fn: (inputs: I) => O, opts: CompileStepOptions = {}) {
    this.mode = opts.mode ?? 'auto';
    // XLA has no kernels for rass's own ops (native-ops.ts): a step meant for XLA records the
    // composite ops instead, here and in its eager calls, so both compute the same thing.
    this.fn = this.mode === 'xla' ? (inputs) => withoutNativeOps(() => fn(inputs)) : fn;
    if (!COMPILE_MODES.includes(this.mode)) throw new Error(`compileStep: mode must be one of ${COMPILE_MODES.join(', ')}, got ${JSON.stringify(this.mode)}`);
    this.name = opts.name ?? 'step';
    this.log = opts.log ?? ((l) => console.log(`[rass] ${l}`));
  }

  /**
   * One step: the returned tensors belong to the caller (dispose them). `planner`: for a step
   * that calls hostPlan (it reads the tensors handed to it, and its returned tensors are
   * disposed after the step).
   */
  call(inputs: I, planner?: Planner): O {
    return withPlanner(planner, () => {
      if (this.mode === 'off') return this.eager(inputs, 'compile: off');
      const support = nativeCompileSupport();
      if (!support.ok) return this.eager(inputs, support.why);
      // Inside tf.grad / variableGrads the caller differentiates through this call: a compiled
      // call would be one opaque op on tfjs's tape, without a gradient.
      if (((tf.engine().state as unknown as { gradientDepth?: number }).gradientDepth ?? 0) > 0) {
        return this.eager(inputs, 'called inside a gradient recording (tf.grad/variableGrads): the compiled function has no tfjs gradient');
      }
      const sig = signature(inputs);
      let entry = this.entries.get(sig);
      if (!entry) this.entries.set(sig, (entry = { recordings: 0 }));
      if (entry.failed) return this.eager(inputs, entry.failed);
      if (entry.split && planner) return this.replaySplit(support.backend, entry, entry.split, inputs, planner);
      if (entry.fnName && entry.program) return this.replay(support.backend, entry, inputs);
      return this.recordCall(support.backend, entry, inputs);
    });
  }

  status(): CompileStatus {
    const anyCompiled = [...this.entries.values()].some((e) => e.fnName || e.split);
    const state = anyCompiled ? 'compiled' : this.reason ? 'eager' : 'recording';
    const status: CompileStatus = { state, reason: anyCompiled ? undefined : this.reason, signatures: this.entries.size, compiledCalls: this.compiledCalls, eagerCalls: this.eagerCalls };
    if (this.flops !== undefined) status.flops = this.flops;
    if (this.mode === 'xla' && anyCompiled) {
      const refused = [...this.xlaRefused.values()][0];
      status.xla = refused === undefined ? 'on' : 'refused';
      if (refused !== undefined) status.xlaReason = refused;
    }
    return status;
  }

  /** Run tags: `rass.compile.<name>` = compiled | eager | recording, and `.reason` when eager. */
  tags(): Record<string, string> {
    const s = this.status();
    const tags: Record<string, string> = { [`rass.compile.${this.name}`]: s.state };
    if (s.reason) tags[`rass.compile.${this.name}.reason`] = s.reason;
    if (s.xla) tags[`rass.compile.${this.name}.xla`] = s.xla === 'on' ? 'on' : `refused: ${s.xlaReason}`;
    return tags;
  }

  /** Drop the registered functions (the context keeps them otherwise). */
  dispose(): void {
    const support = nativeCompileSupport();
    for (const e of this.entries.values()) {
      if (!support.ok) break;
      for (const name of [e.fnName, e.split?.first.fnName, e.split?.second.fnName]) if (name) support.backend.binding.removeFunction?.(name);
    }
    this.entries.clear();
  }

  private eager(inputs: I, why: string): O {
    this.eagerCalls++;
    this.note(why);
    return tf.tidy(() => this.fn(inputs));
  }

  private note(why: string): void {
    this.reason = why;
    if (this.logged.has(why)) return;
    this.logged.add(why);
    this.log(`compile ${this.name}: runs eagerly (${why})`);
  }

  /**
   * Run a registered function: through XLA in mode 'xla' (unless XLA refused this function
   * before), else plain. XLA compiles on the first call and reports an op it cannot compile
   * as an error of that call, before anything ran: the call is then made plain, and so are
   * this function's later calls.
   */
  private execute(b: Binding, fnName: string, ids: number[], numOutputs: number): TensorInfo[] {
    if (this.mode !== 'xla' || this.xlaRefused.has(fnName)) return b.executeOp(fnName, [], ids, numOutputs);
    const first = !this.xlaRan.has(fnName);
    const t0 = performance.now();
    let infos: TensorInfo[];
    try {
      infos = b.executeOp(fnName, [{ name: '_XlaMustCompile', type: b.TF_ATTR_BOOL, value: true }], ids, numOutputs);
    } catch (e) {
      const why = xlaRefusal(e);
      this.xlaRefused.set(fnName, why);
      this.log(`compile ${this.name}: XLA cannot compile this step (${why}); it runs as the plain compiled function`);
      return b.executeOp(fnName, [], ids, numOutputs);
    }
    if (first) {
      this.xlaRan.add(fnName);
      this.log(`compile ${this.name}: runs through XLA (its first call, XLA's compilation included: ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    }
    return infos;
  }

  private recordCall(backend: NativeBackend, entry: Entry, inputs: I): O {
    this.eagerCalls++;
    const { program, out } = record(backend, this.fn, inputs);
    entry.recordings++;
    const release = (p: Program | undefined) => p?.owned.forEach((id) => backend.binding.deleteTensor(id));
    if (program.blocker) {
      release(entry.last);
      release(program);
      entry.last = undefined;
      entry.failed = program.blocker;
      this.note(program.blocker);
      return out;
    }
    const prev = entry.last;
    entry.last = program;
    if (!prev) return out;
    const diff = firstDifference(prev, program);
    release(prev);
    if (diff) {
      if (entry.recordings >= MAX_RECORDINGS) {
        release(program);
        entry.last = undefined;
        entry.failed = `the recorded program still changes after ${MAX_RECORDINGS} calls (${diff}): a value computed in JS changes between steps; pass it as an input tensor`;
        this.note(entry.failed);
      }
      return out;
    }
    // Two identical recordings: register the latest one (its constants are alive).
    const fnName = `rass_${this.name.replace(/[^A-Za-z0-9_]/g, '_')}_${++fnCounter}`;
    const b = backend.binding;
    const split = program.planOutputs.length > 0;
    try {
      if (split) {
        entry.split = registerSplit(b, program, fnName);
      } else {
        entry.numOutputs = registerFunction(b,
          fnName,
          program.nodes,
          program.params.flatMap((p) => [p.node, 0]),
          [...program.outputs.map((o) => o.ref), ...program.assigns.map((a) => a.ref)].flat(),
        );
        entry.fnName = fnName;
        entry.program = program;
      }
      this.flops = program.flops;
      if (!this.logged.has('compiled')) {
        this.logged.add('compiled');
        this.log(`compile ${this.name}: compiled${split ? ' in two functions split at the host plan' : ''} (${program.nodes.length} nodes, ${program.params.length} inputs, ${program.assigns.length} variables updated, ${(program.flops / 1e9).toPrecision(3)} GFLOP in convolutions and matrix products)`);
      }
    } catch (e) {
      entry.failed = `TensorFlow refused the recorded graph: ${(e as Error).message.split('\n')[0]}`;
      this.note(entry.failed);
    } finally {
      release(program);
      entry.last = undefined;
    }
    return out;
  }

  private replay(backend: NativeBackend, entry: Entry, inputs: I): O {
    const p = entry.program!;
    const ids = backend.getInputTensorIds(p.params.map((x) => sourceTensor(x.source, inputs)));
    const infos = this.execute(backend.binding, entry.fnName!, ids, entry.numOutputs!);
    const tensors = infos.map((info) => backend.createOutputTensor(info));
    const out = {} as Record<string, tf.Tensor>;
    p.outputs.forEach((o, i) => (out[o.key] = tensors[i]!));
    p.assigns.forEach((a, i) => {
      const t = tensors[p.outputs.length + i]!;
      a.variable.assign(t);
      t.dispose();
    });
    this.compiledCalls++;
    return out as O;
  }

  /**
   * A planned step: the first function, the planner on its plan tensors, the second function.
   * The cut values (often over a thousand activations) pass from one function to the other as
   * bare binding handles: no tfjs tensor is made for them.
   */
  private replaySplit(backend: NativeBackend, entry: Entry, s: SplitStep, inputs: I, planner: Planner): O {
    const b = backend.binding;
    const idOf = (t: tf.Tensor) => backend.getInputTensorIds([t])[0]!;
    const first = this.execute(b, s.first.fnName, s.first.params.map((x) => idOf(sourceTensor(x, inputs))), s.first.numOutputs);
    const planOut = first.slice(0, s.planKeys.length).map((info) => backend.createOutputTensor(info));
    const cut = first.slice(s.planKeys.length).map((info) => info.id);
    let plan: Record<string, tf.Tensor> = {};
    try {
      plan = tf.tidy(() => planner(Object.fromEntries(s.planKeys.map((k, i) => [k, planOut[i]!]))));
      // the second function was traced with the recorded plan's shapes: a plan of other shapes
      // (not part of the input signature) runs this call eagerly on the same plan, and the
      // step stays eager from here on, saying why
      const changed = Object.entries(s.planShapes).find(([k, shape]) => plan[k] && plan[k]!.shape.join(',') !== shape);
      if (changed) {
        entry.failed = `the host plan's tensor "${changed[0]}" changed shape ([${changed[1]}] -> [${plan[changed[0]]!.shape.join(',')}]); give the planner's tensors fixed shapes (pad them) to compile`;
        const same = plan;
        return withPlanner(() => same, () => this.eager(inputs, entry.failed!));
      }
      const ids = s.second.params.map((x) => {
        if (x.kind === 'cut') return cut[x.index]!;
        if (x.kind !== 'plan') return idOf(sourceTensor(x, inputs));
        const t = plan[x.key];
        if (!t) throw new Error(`compileStep ${this.name}: the planner returned no tensor "${x.key}" (it did when the step was recorded)`);
        return idOf(t);
      });
      const second = this.execute(b, s.second.fnName, ids, s.second.numOutputs).map((info) => backend.createOutputTensor(info));
      const out = {} as Record<string, tf.Tensor>;
      s.outputs.forEach((key, i) => (out[key] = second[i]!));
      s.assigns.forEach((v, i) => {
        const t = second[s.outputs.length + i]!;
        v.assign(t);
        t.dispose();
      });
      this.compiledCalls++;
      return out as O;
    } finally {
      tf.dispose([...planOut, ...Object.values(plan)]);
      for (const id of cut) b.deleteTensor(id);
    }
  }
}

/** The tensor an input or variable source stands for on this call. */
function sourceTensor(x: Source, inputs: StepInputs): tf.Tensor {
  if (x.kind === 'input') return inputs[x.key]!;
  if (x.kind === 'variable') return x.variable;
  throw new Error(`compileStep: a ${x.kind} input has no tensor of its own`);
}

/** Compile `fn` (see the module comment). */
export function compileStep<I extends StepInputs, O extends StepOutputs>(fn: (inputs: I) => O, opts?: CompileStepOptions): CompiledStep<I, O> {
  return new CompiledStep(fn, opts);
}

/** A function input: a Placeholder node of this binding dtype (enum) and shape. */
function placeholderNode(b: Binding, dtype: number, shape: number[]): GraphNode {
  return {
    op: 'Placeholder',
    attrs: [
      { name: 'dtype', type: b.TF_ATTR_TYPE, value: dtype },
      { name: 'shape', type: b.TF_ATTR_SHAPE, value: shape },
    ],
    inputs: [],
  };
}

function signature(inputs: StepInputs): string {
  return Object.keys(inputs)
    .sort()
    .map((k) => `${k}:${inputs[k]!.dtype}[${inputs[k]!.shape.join(',')}]`)
    .join(';');
}

function tfDtype(b: Binding, dtype: tf.DataType): number {
  if (dtype === 'float32') return b.TF_FLOAT;
  if (dtype === 'int32') return b.TF_INT32;
  if (dtype === 'bool') return b.TF_BOOL;
  throw new Error(`compileStep: inputs of dtype ${dtype} are not supported`);
}

function digest(values: unknown): string {
  const h = createHash('sha1');
  if (ArrayBuffer.isView(values)) h.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  else h.update(JSON.stringify(values));
  return h.digest('hex').slice(0, 16);
}

/** Run `fn` eagerly once while recording every binding call it makes. */
function record<I extends StepInputs, O extends StepOutputs>(backend: NativeBackend, fn: (inputs: I) => O, inputs: I): { program: Program; out: O } {
  const b = backend.binding;
  // Every value the step may read must have a binding id before recording starts, so that a
  // lazily-uploaded input or variable is not mistaken for a constant created in the step.
  const pre = new Map<number, Source>();
  const vars = Object.values(tf.engine().state.registeredVariables);
  const varIdsBefore = new Map<tf.Variable, number>();
  for (const v of vars) {
    const id = backend.getInputTensorIds([v])[0]!;
    varIdsBefore.set(v, id);
    pre.set(id, { kind: 'variable', variable: v });
  }
  const shapeOf = new Map<number, { shape: number[]; dtype: tf.DataType }>();
  for (const v of vars) shapeOf.set(varIdsBefore.get(v)!, { shape: v.shape, dtype: v.dtype });
  for (const [key, t] of Object.entries(inputs)) {
    const id = backend.getInputTensorIds([t])[0]!;
    pre.set(id, { kind: 'input', key });
    shapeOf.set(id, { shape: t.shape, dtype: t.dtype });
  }

  const program: Program = { nodes: [], keys: [], params: [], outputs: [], assigns: [], planOutputs: [], meta: new Map(), owned: [], flops: 0 };
  const produced = new Map<number, [number, number]>();
  const constIds = new Set<number>();
  const placeholder = new Map<number, number>();
  const add = (node: GraphNode, key: string): number => {
    program.nodes.push(node);
    program.keys.push(key);
    return program.nodes.length - 1;
  };
  const refOf = (id: number): [number, number] => {
    const r = produced.get(id);
    if (r) return r;
    const ph = placeholder.get(id);
    if (ph !== undefined) return [ph, 0];
    // Bookkeeping must never break the eager step it watches: a value it cannot represent
    // makes the recording uncompilable (with the reason), and the step carries on.
    try {
      const src = pre.get(id);
      if (src) {
        const meta = shapeOf.get(id)!;
        const label = src.kind === 'variable' ? `variable:${src.variable.name}` : `${src.kind}:${src.kind === 'cut' ? src.index : src.key}`;
        const n = add(placeholderNode(b, tfDtype(b, meta.dtype), meta.shape), `${label}:${meta.dtype}[${meta.shape}]`);
        placeholder.set(id, n);
        program.params.push({ node: n, source: src });
        return [n, 0];
      }
      // A tensor from before the step that is neither an input nor a variable: a captured
      // constant, kept alive (an Identity handle this module owns) until registration.
      const [own] = orig.executeOp.call(b, 'Identity', [], [id], 1);
      program.owned.push(own!.id);
      const n = add({ op: 'Const', attrs: [], inputs: [], tensor: own!.id, shape: shapeOf.get(id)?.shape }, `capture:${digest(orig.tensorDataSync.call(b, id))}`);
      produced.set(id, [n, 0]);
      return [n, 0];
    } catch (e) {
      program.blocker ??= `cannot record tensor ${id}: ${(e as Error).message.split('\n')[0]}`;
      return [0, 0];
    }
  };

  const shapeOfId = (id: number): number[] | undefined => {
    const r = produced.get(id);
    return r ? program.meta.get(`${r[0]}:${r[1]}`)?.shape : shapeOf.get(id)?.shape;
  };
  // The binding's exports are read-only; the backend's `binding` property is not, and every
  // tfjs-node kernel calls through it, so a recording swaps in a wrapper for one call.
  const orig = { executeOp: b.executeOp, createTensor: b.createTensor, deleteTensor: b.deleteTensor, tensorDataSync: b.tensorDataSync };
  const executeOp: Binding['executeOp'] = (name, attrs, ids, numOutputs) => {
    const refs = ids.map(refOf);
    const infos = orig.executeOp.call(b, name, attrs, ids, numOutputs);
    program.flops += denseFlops(name, attrs, ids.map(shapeOfId), infos[0]?.shape);
    const n = add({ op: name, attrs, inputs: refs.flat() }, `${name}|${JSON.stringify(attrs)}|${refs.map((r) => r.join(':')).join(',')}|${numOutputs}`);
    infos.forEach((info, i) => {
      produced.set(info.id, [n, i]);
      program.meta.set(`${n}:${i}`, { shape: info.shape, dtype: info.dtype });
    });
    return infos;
  };
  const createTensor: Binding['createTensor'] = (shape, dtype, values) => {
    const id = orig.createTensor.call(b, shape, dtype, values);
    const n = add({ op: 'Const', attrs: [], inputs: [], tensor: id, shape }, `const:${dtype}[${shape.join(',')}]:${digest(values)}`);
    produced.set(id, [n, 0]);
    constIds.add(id);
    return id;
  };
  // A constant's handle must outlive the step (tf.tidy deletes it) until it is registered.
  const deleteTensor: Binding['deleteTensor'] = (id) => {
    if (constIds.has(id)) program.owned.push(id);
    else orig.deleteTensor.call(b, id);
  };
  const tensorDataSync: Binding['tensorDataSync'] = (id) => {
    const r = produced.get(id);
    // tfjs-node's GatherV2 bounds check reads the indices without using them (native-kernels.ts)
    if (r && !program.blocker && program.nodes[r[0]]!.op !== 'Const' && !inGatherBoundsCheck()) {
      program.blocker = `the step reads a tensor computed inside it on the host (output of ${program.nodes[r[0]]!.op}, e.g. dataSync/arraySync); compiled steps do not split around host reads`;
    }
    return orig.tensorDataSync.call(b, id);
  };
  const wrapped = Object.create(b, {
    executeOp: { value: executeOp },
    createTensor: { value: createTensor },
    deleteTensor: { value: deleteTensor },
    tensorDataSync: { value: tensorDataSync },
  }) as Binding;
  backend.binding = wrapped;

  // hostPlan during the recording: the tensors handed over become outputs of the first
  // segment, the planner runs unrecorded (its reads are the point of it), and its tensors
  // become inputs of the second segment
  const plan = (tensors: Record<string, tf.Tensor>, planner: Planner): Record<string, tf.Tensor> => {
    if (program.planOutputs.length) program.blocker ??= 'the step calls hostPlan more than once (a compiled step splits at one plan)';
    for (const [key, t] of Object.entries(tensors)) {
      const ref = refOf(backend.getInputTensorIds([t])[0]!);
      program.planOutputs.push({ key, ref });
      program.keys.push(`plan-output:${key}<-${ref.join(':')}`);
    }
    backend.binding = b;
    try {
      const res = planner(tensors);
      for (const [key, t] of Object.entries(res)) {
        // uploaded now, with the real binding, so the upload is not recorded as a constant
        const id = backend.getInputTensorIds([t])[0]!;
        pre.set(id, { kind: 'plan', key });
        shapeOf.set(id, { shape: t.shape, dtype: t.dtype });
      }
      return res;
    } finally {
      backend.binding = wrapped;
    }
  };

  let out: O;
  const prevPlan = recordingPlan;
  recordingPlan = plan;
  try {
    try {
      out = tf.tidy(() => fn(inputs));
    } catch (e) {
      // the step itself failed: nothing to compile, and the handles kept for it go
      program.owned.forEach((id) => orig.deleteTensor.call(b, id));
      throw e;
    }
    for (const [key, t] of Object.entries(out)) {
      if (!(t instanceof tf.Tensor)) {
        program.blocker ??= `output "${key}" is not a tensor (compiled steps return tensors only)`;
        continue;
      }
      program.outputs.push({ key, ref: refOf(backend.getInputTensorIds([t])[0]!) });
    }
    for (const v of Object.values(tf.engine().state.registeredVariables)) {
      const before = varIdsBefore.get(v);
      if (before === undefined) {
        // typically optimiser slots created lazily on the first step: the next recording settles
        program.keys.push(`new-variable:${v.name}`);
        continue;
      }
      const now = backend.getInputTensorIds([v])[0]!;
      if (now !== before) program.assigns.push({ variable: v, ref: refOf(now) });
    }
  } finally {
    backend.binding = b;
    recordingPlan = prevPlan;
  }
  for (const a of program.assigns) program.keys.push(`assign:${a.variable.name}<-${a.ref.join(':')}`);
  for (const o of program.outputs) program.keys.push(`output:${o.key}<-${o.ref.join(':')}`);
  for (const p of program.params) if (p.source.kind === 'variable' && !vars.includes(p.source.variable)) program.blocker ??= 'a variable read by the step was disposed';
  return { program, out: out! };
}

const elems = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * The multiply-add work of one op in FLOPs (2 per multiply-add), for the convolutions and matrix
 * products that dominate a step's compute; 0 for every other op and where a shape is unknown.
 * Convolution gradients cost what their forward costs.
 */
export function denseFlops(op: string, attrs: readonly OpAttr[], inShapes: readonly (readonly number[] | undefined)[], outShape: readonly number[] | undefined): number {
  const attr = (name: string) => attrs.find((a) => a.name === name)?.value;
  const [a, b, c] = inShapes;
  switch (op) {
    case 'Conv2D': // out [N,Ho,Wo,Co], filter [kh,kw,Ci,Co]
      return b && outShape ? (2 * elems(outShape) * elems(b)) / b[3]! : 0;
    case 'Conv2DBackpropInput': // (input_sizes, filter, out_backprop)
    case 'Conv2DBackpropFilter': { // (input, filter_sizes, out_backprop): out is the filter
      const filter = op === 'Conv2DBackpropInput' ? b : outShape;
      return filter && c ? (2 * elems(c) * elems(filter)) / filter[3]! : 0;
    }
    case 'DepthwiseConv2dNative': // filter [kh,kw,Ci,mult]: kh*kw multiply-adds per output
      return b && outShape ? 2 * elems(outShape) * b[0]! * b[1]! : 0;
    case 'MatMul':
    case 'BatchMatMul':
    case 'BatchMatMulV2':
    case 'BatchMatMulV3': {
      if (!a || !outShape || a.length < 2) return 0;
      const transposed = attr('transpose_a') ?? attr('adj_x');
      const k = transposed ? a[a.length - 2]! : a[a.length - 1]!;
      return 2 * elems(outShape) * k;
    }
    default:
      return 0;
  }
}

/**
 * Register a planned step as two functions split at the plan. A node belongs to the second
 * function when it depends (transitively) on a tensor the planner returned; everything else is
 * the first. The first returns the plan's tensors and every value of its own the second reads
 * (the cut); inputs, variables and constants the second reads are its own inputs/constants.
 */
function registerSplit(b: Binding, p: Program, fnName: string): SplitStep {
  const n = p.nodes.length;
  const source = new Map(p.params.map((x) => [x.node, x.source]));
  const late = new Array<boolean>(n).fill(false);
  for (let i = 0; i < n; i++) {
    if (source.get(i)?.kind === 'plan') late[i] = true;
    else for (let j = 0; j < p.nodes[i]!.inputs.length; j += 2) if (late[p.nodes[i]!.inputs[j]!]) late[i] = true;
  }
  for (const o of p.planOutputs) if (late[o.ref[0]]) throw new Error(`the tensor "${o.key}" handed to hostPlan depends on the plan itself`);

  // the second function: external values first (a node's inputs must precede it)
  const second: GraphNode[] = [];
  const secondParams: { node: number; source: Source }[] = [];
  const secondIndex = new Map<number, number>();
  const external = new Map<string, [number, number]>();
  const cut: [number, number][] = [];
  const inSecond = (ref: [number, number]): [number, number] => {
    if (late[ref[0]]) return [secondIndex.get(ref[0])!, ref[1]];
    const k = ref.join(':');
    const known = external.get(k);
    if (known) return known;
    const node = p.nodes[ref[0]]!;
    const src = source.get(ref[0]);
    if (src) {
      second.push({ ...node }); // the same input or variable, passed to this function too
      secondParams.push({ node: second.length - 1, source: src });
    } else if (node.op === 'Const') {
      second.push({ ...node }); // the same constant (its tensor stays alive until both are registered)
    } else {
      const meta = p.meta.get(k);
      if (!meta) throw new Error(`no shape recorded for ${node.op} output ${ref[1]}`);
      second.push(placeholderNode(b, meta.dtype, meta.shape));
      secondParams.push({ node: second.length - 1, source: { kind: 'cut', index: cut.length } });
      cut.push(ref);
    }
    const r: [number, number] = [second.length - 1, 0];
    external.set(k, r);
    return r;
  };
  for (let i = 0; i < n; i++) {
    if (!late[i]) continue;
    const node = p.nodes[i]!;
    const inputs: number[] = [];
    for (let j = 0; j < node.inputs.length; j += 2) inputs.push(...inSecond([node.inputs[j]!, node.inputs[j + 1]!]));
    second.push({ ...node, inputs });
    secondIndex.set(i, second.length - 1);
    const src = source.get(i);
    if (src) secondParams.push({ node: second.length - 1, source: src });
  }
  const secondOutputs = [...p.outputs.map((o) => inSecond(o.ref)), ...p.assigns.map((a) => inSecond(a.ref))];

  // the first function: the early nodes the plan and the cut need (Grappler drops the rest)
  const first: GraphNode[] = [];
  const firstParams: { node: number; source: Source }[] = [];
  const firstIndex = new Map<number, number>();
  const used = new Array<boolean>(n).fill(false);
  for (let i = 0; i < n; i++) if (!late[i] && !source.has(i)) for (let j = 0; j < p.nodes[i]!.inputs.length; j += 2) used[p.nodes[i]!.inputs[j]!] = true;
  for (const r of [...p.planOutputs.map((o) => o.ref), ...cut]) used[r[0]] = true;
  for (let i = 0; i < n; i++) {
    if (late[i] || ((source.has(i) || p.nodes[i]!.op === 'Const') && !used[i])) continue;
    const node = p.nodes[i]!;
    const inputs: number[] = [];
    for (let j = 0; j < node.inputs.length; j += 2) inputs.push(firstIndex.get(node.inputs[j]!)!, node.inputs[j + 1]!);
    first.push({ ...node, inputs });
    firstIndex.set(i, first.length - 1);
    const src = source.get(i);
    if (src) firstParams.push({ node: first.length - 1, source: src });
  }
  const firstOutputs = [...p.planOutputs.map((o) => o.ref), ...cut].map((r): [number, number] => [firstIndex.get(r[0])!, r[1]]);

  const names = [`${fnName}_plan`, `${fnName}_rest`];
  const n1 = registerFunction(b, names[0]!, first, firstParams.flatMap((x) => [x.node, 0]), firstOutputs.flat());
  let n2: number;
  try {
    n2 = registerFunction(b, names[1]!, second, secondParams.flatMap((x) => [x.node, 0]), secondOutputs.flat());
  } catch (e) {
    b.removeFunction?.(names[0]!);
    throw e;
  }
  return {
    first: { fnName: names[0]!, numOutputs: n1, params: firstParams.map((x) => x.source) },
    planKeys: p.planOutputs.map((o) => o.key),
    planShapes: Object.fromEntries(secondParams.flatMap((x) => (x.source.kind === 'plan' ? [[x.source.key, (second[x.node]!.attrs.find((a) => a.name === 'shape')!.value as number[]).join(',')]] : []))),
    second: { fnName: names[1]!, numOutputs: n2, params: secondParams.map((x) => x.source) },
    outputs: p.outputs.map((o) => o.key),
    assigns: p.assigns.map((a) => a.variable),
  };
}

function firstDifference(a: Program, b: Program): string | undefined {
  const n = Math.max(a.keys.length, b.keys.length);
  for (let i = 0; i < n; i++) {
    if (a.keys[i] !== b.keys[i]) return `entry ${i}: ${(a.keys[i] ?? '(none)').slice(0, 80)} vs ${(b.keys[i] ?? '(none)').slice(0, 80)}`;
  }
  for (let i = 0; i < a.params.length; i++) {
    const x = a.params[i]!.source;
    const y = b.params[i]!.source;
    if (x.kind !== y.kind || (x.kind === 'variable' && y.kind === 'variable' && x.variable !== y.variable)) return `input ${i} binds a different variable`;
  }
  return undefined;
}

/**
 * Per-step numbers (an optimiser's `hyper()`: learning rates, bias corrections) as scalar
 * input tensors under `prefix/`, so a compiled step receives them each call instead of
 * freezing the first step's values. The caller disposes them after the call.
 */
export function scalarInputs(values: Record<string, number>, prefix = 'hyper'): Record<string, tf.Scalar> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`${prefix}/${k}`, tf.scalar(v)]));
}

/** Inside the step: the `scalarInputs` tensors back under their own names. */
export function pickScalars(inputs: StepInputs, prefix = 'hyper'): Record<string, tf.Scalar> {
  const out: Record<string, tf.Scalar> = {};
  for (const [k, v] of Object.entries(inputs)) if (k.startsWith(`${prefix}/`)) out[k.slice(prefix.length + 1)] = v as tf.Scalar;
  return out;
}

/**
 * Whether compiled steps work here (for `rass doctor`): compiles a two-op update of a
 * variable and checks the compiled calls against the arithmetic (v <- 2v + x from v = [1,2,3],
 * x = 1: two recorded calls agree, calls 3 and 4 run compiled and leave [31, 47, 63]).
 */
export function probeCompiledSteps(mode: 'auto' | 'xla' = 'auto'): { ok: boolean; detail: string } {
  const support = nativeCompileSupport();
  if (!support.ok) return { ok: false, detail: support.why };
  const v = tf.tidy(() => tf.variable(tf.tensor1d([1, 2, 3]), false, `rass-compile-probe#${++fnCounter}`));
  const notes: string[] = [];
  const step = compileStep(({ x }: { x: tf.Tensor }) => {
    v.assign(tf.add(tf.mul(v, 2), x));
    return { s: tf.sum(v) };
  }, { name: 'probe', mode, log: (l) => notes.push(l) });
  const x = tf.ones([3]);
  try {
    let sum = 0;
    for (let i = 0; i < 4; i++) {
      const { s } = step.call({ x });
      sum = s!.dataSync()[0]!;
      s!.dispose();
    }
    const got = Array.from(v.dataSync());
    const st = step.status();
    if (st.compiledCalls !== 2) return { ok: false, detail: `the probe step did not compile (${st.reason ?? notes.join('; ')})` };
    if (mode === 'xla' && st.xla !== 'on') return { ok: false, detail: `XLA refused the probe step (${st.xlaReason ?? notes.join('; ')})` };
    if (got.join(',') !== '31,47,63' || sum !== 141) return { ok: false, detail: `the compiled probe computed [${got.join(', ')}], expected [31, 47, 63]` };
    return { ok: true, detail: mode === 'xla' ? 'a probe step ran through XLA and matched' : 'registerFunction present; a probe step compiled and matched' };
  } finally {
    step.dispose();
    tf.dispose([x, v]);
  }
}
