import * as tf from '@tensorflow/tfjs-core';
import { createHash } from 'node:crypto';
import { inGatherBoundsCheck } from './native-kernels.js';

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
 * Host reads: a dataSync/arraySync of a tensor computed inside the step (a JS-side matcher,
 * a loss printed mid-step) cannot be part of a graph; such a step is NOT split into segments,
 * it falls back to eager execution (reason logged once and kept for the run tags). Read
 * results after the call instead.
 *
 * Fallbacks (the step then runs eagerly, exactly as without compileStep): `mode: 'off'`;
 * any backend other than "tensorflow" (wasm, cpu); a native binding built without the patch;
 * a host read; an op TensorFlow refuses in a graph; a program that never settles.
 * Each signature (input names, shapes and dtypes) is recorded and compiled separately.
 */
export type CompileMode = 'auto' | 'off';

export type StepInputs = Record<string, tf.Tensor>;
export type StepOutputs = Record<string, tf.Tensor>;

export interface CompileStepOptions {
  /** 'auto' (default): compile where possible, else eager with the reason; 'off': always eager. */
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
}

type Source = { kind: 'input'; key: string } | { kind: 'variable'; variable: tf.Variable };

/** A recorded step. */
interface Program {
  nodes: GraphNode[];
  /** per node, what identifies it across recordings (op, attrs, inputs, constant value) */
  keys: string[];
  /** Placeholder node index -> where its value comes from on each call */
  params: { node: number; source: Source }[];
  outputs: { key: string; ref: [number, number] }[];
  assigns: { variable: tf.Variable; ref: [number, number] }[];
  /** binding tensors this module owns (constants kept alive until registration) */
  owned: number[];
  /** why this recording cannot be compiled, if it cannot */
  blocker?: string;
}

interface Entry {
  last?: Program;
  recordings: number;
  fnName?: string;
  numOutputs?: number;
  program?: Program;
  failed?: string;
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

export class CompiledStep<I extends StepInputs = StepInputs, O extends StepOutputs = StepOutputs> {
  private readonly entries = new Map<string, Entry>();
  private readonly logged = new Set<string>();
  private readonly mode: CompileMode;
  private readonly name: string;
  private readonly log: (line: string) => void;
  private compiledCalls = 0;
  private eagerCalls = 0;
  private reason?: string;

  constructor(private readonly fn: (inputs: I) => O, opts: CompileStepOptions = {}) {
    this.mode = opts.mode ?? 'auto';
    if (this.mode !== 'auto' && this.mode !== 'off') throw new Error(`compileStep: mode must be auto or off, got ${JSON.stringify(this.mode)}`);
    this.name = opts.name ?? 'step';
    this.log = opts.log ?? ((l) => console.log(`[rass] ${l}`));
  }

  /** One step: the returned tensors belong to the caller (dispose them). */
  call(inputs: I): O {
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
    if (entry.fnName && entry.program) return this.replay(support.backend, entry, inputs);
    return this.recordCall(support.backend, entry, inputs);
  }

  status(): CompileStatus {
    const anyCompiled = [...this.entries.values()].some((e) => e.fnName);
    const state = anyCompiled ? 'compiled' : this.reason ? 'eager' : 'recording';
    return { state, reason: anyCompiled ? undefined : this.reason, signatures: this.entries.size, compiledCalls: this.compiledCalls, eagerCalls: this.eagerCalls };
  }

  /** Run tags: `rass.compile.<name>` = compiled | eager | recording, and `.reason` when eager. */
  tags(): Record<string, string> {
    const s = this.status();
    const tags: Record<string, string> = { [`rass.compile.${this.name}`]: s.state };
    if (s.reason) tags[`rass.compile.${this.name}.reason`] = s.reason;
    return tags;
  }

  /** Drop the registered functions (the context keeps them otherwise). */
  dispose(): void {
    const support = nativeCompileSupport();
    for (const e of this.entries.values()) {
      if (e.fnName && support.ok) support.backend.binding.removeFunction?.(e.fnName);
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
    try {
      entry.numOutputs = b.registerFunction!(
        fnName,
        program.nodes,
        program.params.flatMap((p) => [p.node, 0]),
        [...program.outputs.map((o) => o.ref), ...program.assigns.map((a) => a.ref)].flat(),
      );
      entry.fnName = fnName;
      entry.program = program;
      if (!this.logged.has('compiled')) {
        this.logged.add('compiled');
        this.log(`compile ${this.name}: compiled (${program.nodes.length} nodes, ${program.params.length} inputs, ${program.assigns.length} variables updated)`);
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
    const ids = backend.getInputTensorIds(p.params.map((x) => (x.source.kind === 'input' ? inputs[x.source.key]! : x.source.variable)));
    const infos = backend.binding.executeOp(entry.fnName!, [], ids, entry.numOutputs!);
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
}

/** Compile `fn` (see the module comment). */
export function compileStep<I extends StepInputs, O extends StepOutputs>(fn: (inputs: I) => O, opts?: CompileStepOptions): CompiledStep<I, O> {
  return new CompiledStep(fn, opts);
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

  const program: Program = { nodes: [], keys: [], params: [], outputs: [], assigns: [], owned: [] };
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
        const attrs: OpAttr[] = [
          { name: 'dtype', type: b.TF_ATTR_TYPE, value: tfDtype(b, meta.dtype) },
          { name: 'shape', type: b.TF_ATTR_SHAPE, value: meta.shape },
        ];
        const label = src.kind === 'input' ? `input:${src.key}` : `variable:${src.variable.name}`;
        const n = add({ op: 'Placeholder', attrs, inputs: [] }, `${label}:${meta.dtype}[${meta.shape}]`);
        placeholder.set(id, n);
        program.params.push({ node: n, source: src });
        return [n, 0];
      }
      // A tensor from before the step that is neither an input nor a variable: a captured
      // constant, kept alive (an Identity handle this module owns) until registration.
      const [own] = orig.executeOp.call(b, 'Identity', [], [id], 1);
      program.owned.push(own!.id);
      const n = add({ op: 'Const', attrs: [], inputs: [], tensor: own!.id }, `capture:${digest(orig.tensorDataSync.call(b, id))}`);
      produced.set(id, [n, 0]);
      return [n, 0];
    } catch (e) {
      program.blocker ??= `cannot record tensor ${id}: ${(e as Error).message.split('\n')[0]}`;
      return [0, 0];
    }
  };

  // The binding's exports are read-only; the backend's `binding` property is not, and every
  // tfjs-node kernel calls through it, so a recording swaps in a wrapper for one call.
  const orig = { executeOp: b.executeOp, createTensor: b.createTensor, deleteTensor: b.deleteTensor, tensorDataSync: b.tensorDataSync };
  const executeOp: Binding['executeOp'] = (name, attrs, ids, numOutputs) => {
    const refs = ids.map(refOf);
    const infos = orig.executeOp.call(b, name, attrs, ids, numOutputs);
    const n = add({ op: name, attrs, inputs: refs.flat() }, `${name}|${JSON.stringify(attrs)}|${refs.map((r) => r.join(':')).join(',')}|${numOutputs}`);
    infos.forEach((info, i) => produced.set(info.id, [n, i]));
    return infos;
  };
  const createTensor: Binding['createTensor'] = (shape, dtype, values) => {
    const id = orig.createTensor.call(b, shape, dtype, values);
    const n = add({ op: 'Const', attrs: [], inputs: [], tensor: id }, `const:${dtype}[${shape.join(',')}]:${digest(values)}`);
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
  backend.binding = Object.create(b, {
    executeOp: { value: executeOp },
    createTensor: { value: createTensor },
    deleteTensor: { value: deleteTensor },
    tensorDataSync: { value: tensorDataSync },
  }) as Binding;

  let out: O;
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
  }
  for (const a of program.assigns) program.keys.push(`assign:${a.variable.name}<-${a.ref.join(':')}`);
  for (const o of program.outputs) program.keys.push(`output:${o.key}<-${o.ref.join(':')}`);
  for (const p of program.params) if (p.source.kind === 'variable' && !vars.includes(p.source.variable)) program.blocker ??= 'a variable read by the step was disposed';
  return { program, out: out! };
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
export function probeCompiledSteps(): { ok: boolean; detail: string } {
  const support = nativeCompileSupport();
  if (!support.ok) return { ok: false, detail: support.why };
  const v = tf.tidy(() => tf.variable(tf.tensor1d([1, 2, 3]), false, `rass-compile-probe#${++fnCounter}`));
  const notes: string[] = [];
  const step = compileStep(({ x }: { x: tf.Tensor }) => {
    v.assign(tf.add(tf.mul(v, 2), x));
    return { s: tf.sum(v) };
  }, { name: 'probe', log: (l) => notes.push(l) });
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
    if (got.join(',') !== '31,47,63' || sum !== 141) return { ok: false, detail: `the compiled probe computed [${got.join(', ')}], expected [31, 47, 63]` };
    return { ok: true, detail: 'registerFunction present; a probe step compiled and matched' };
  } finally {
    step.dispose();
    tf.dispose([x, v]);
  }
}
