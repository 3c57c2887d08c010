import * as tf from '@tensorflow/tfjs-core';

/**
 * A backward pass that frees as it goes, installed in place of tfjs' `engine.gradients`
 * (which tf.grad, tf.variableGrads, customGrad and every optimiser call).
 *
 * Why: tfjs' own backward runs inside one tidy and frees nothing until it ends. Every
 * upstream gradient it computes and every tensor a kernel saved for its gradient stay alive
 * until the last node is done, so the backward's peak is (all saved activations + a
 * gradient for every intermediate tensor): for a UNet step, about twice PyTorch's, which
 * releases a saved tensor as soon as the node that saved it has run its backward and an
 * upstream gradient as soon as it has been consumed. This pass does the same:
 *   - a tape node's saved tensors are disposed right after its gradient ran;
 *   - the upstream gradient of a node's outputs is disposed once that node consumed it (every
 *     consumer of a tensor comes later on the tape, so it has already been processed), unless
 *     it is the caller's `dy` or one of the returned gradients.
 * Gradients are reference-counted by tensor object, because a gradient function may return
 * its `dy` unchanged (the same object then holds two tensors' gradients).
 *
 * Values are exactly tfjs' (same nodes, same order, same accumulation); only the lifetimes
 * change. Higher-order gradients (a gradient taken while another tape records) keep tfjs'
 * behaviour: the outer tape may still need what this pass would free.
 */

interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(nameOrFn: string | (() => T), fn?: () => T): T;
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): { value: tf.Tensor; grads: (tf.Tensor | undefined)[] };
  addTapeNode(kernelName: string, inputs: Record<string, tf.Tensor>, outputs: tf.Tensor[], gradientsFunc: unknown, saved: SavedTensor[], attrs: unknown): void;
  leanGradientsInstalled?: { original: EngineInternals['gradients']; originalAddTapeNode: EngineInternals['addTapeNode'] };
}

/** What a tape node saved: a tensor, or the shape-only stand-in below. */
type SavedTensor = tf.Tensor | ShapeStandIn;

interface ShapeStandIn {
  readonly shape: number[];
  readonly dtype: tf.DataType;
  readonly rank: number;
  readonly size: number;
  dispose(): void;
}

/**
 * Kernels whose stock tfjs gradient saves its inputs only to read their shapes (broadcast
 * reductions, reshape back, split a concat, expand a reduction, pad a slice back). Saving
 * them keeps every such input's buffer alive until the backward: at a 64x64 latent, 270 of
 * the tiny UNet's 477 MB of saved activations. For these, the tape keeps a stand-in with the
 * shape and dtype and frees the tensor. The stock gradient functions run unchanged on the
 * stand-ins (each reads `shape`/`rank`/`dtype` only; a test differentiates every one of them
 * against the stock tape).
 */
export const SHAPE_ONLY_SAVES: ReadonlySet<string> = new Set(['Add', 'Sub', 'Reshape', 'Concat', 'Mean', 'Sum', 'Slice', 'AddN']);

function standIn(t: tf.Tensor): ShapeStandIn {
  return { shape: t.shape.slice(), dtype: t.dtype, rank: t.rank, size: t.size, dispose: () => {} };
}

/** The tape nodes on a path from some x to y, inputs pruned to those that depend on an x. */
export function nodesBetween(tape: readonly TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const dependsOnX = new Set<number>(xs.map((x) => x.id));
  const fromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => dependsOnX.has(t.id))) {
      fromX.add(node.id);
      for (const o of node.outputs) dependsOnX.add(o.id);
    }
  }
  const feedsY = new Set<number>([y.id]);
  const toY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i] as TapeNode;
    if (node.outputs.some((o) => feedsY.has(o.id))) {
      toY.add(node.id);
      for (const t of Object.values(node.inputs)) feedsY.add(t.id);
    }
  }
  const out: TapeNode[] = [];
  for (const node of tape) {
    if (!fromX.has(node.id) || !toY.has(node.id)) continue;
    const inputs: Record<string, tf.Tensor> = {};
    for (const [name, t] of Object.entries(node.inputs)) if (dependsOnX.has(t.id)) inputs[name] = t;
    out.push({ ...node, inputs });
  }
  return out;
}

/** Tensor id -> its accumulated gradient, each gradient object disposed when no id holds it. */
class GradientMap {
  private readonly byId = new Map<number, tf.Tensor>();
  private readonly holders = new Map<tf.Tensor, number>();
  constructor(private readonly protectedTensors: Set<tf.Tensor>) {}

  get(id: number): tf.Tensor | undefined {
    return this.byId.get(id);
  }

  set(id: number, g: tf.Tensor): void {
    const old = this.byId.get(id);
    this.byId.set(id, g);
    this.holders.set(g, (this.holders.get(g) ?? 0) + 1);
    if (old !== undefined) this.release(old);
  }

  /** Forget id's gradient; dispose it unless another id (or the caller) still holds it. */
  drop(id: number): void {
    const g = this.byId.get(id);
    if (g === undefined) return;
    this.byId.delete(id);
    this.release(g);
  }

  /** Dispose a gradient no id holds (a summand already added into an accumulated gradient). */
  disposeIfUnheld(g: tf.Tensor): void {
    if (!this.holders.has(g) && !this.protectedTensors.has(g)) g.dispose();
  }

  private release(g: tf.Tensor): void {
    const n = (this.holders.get(g) ?? 1) - 1;
    if (n > 0) {
      this.holders.set(g, n);
      return;
    }
    this.holders.delete(g);
    if (!this.protectedTensors.has(g)) g.dispose();
  }
}

function leanBackward(engine: EngineInternals, nodes: readonly TapeNode[], y: tf.Tensor, dy: tf.Tensor, xs: readonly tf.Tensor[], callerDy: boolean): (tf.Tensor | undefined)[] {
  const keepIds = new Set(xs.map((x) => x.id));
  const map = new GradientMap(new Set(callerDy ? [dy] : []));
  map.set(y.id, dy);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i] as TapeNode;
    const dys = node.outputs.map((o) => map.get(o.id) ?? null);
    if (node.gradient == null) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    const inputGrads = node.gradient(dys);
    for (const [name, x] of Object.entries(node.inputs)) {
      const thunk = inputGrads[name];
      if (thunk === undefined) throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGrads)}.`);
      const dx = engine.tidy(() => thunk());
      if (dx.dtype !== 'float32') throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`);
      if (!tf.util.arraysEqual(dx.shape, x.shape)) {
        throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
      }
      const prev = map.get(x.id);
      map.set(x.id, prev === undefined ? dx : tf.add(prev, dx));
      // the sum replaced dx: free it now (tfjs keeps it to the end of the backward)
      if (prev !== undefined) map.disposeIfUnheld(dx);
    }
    // this node's backward is done: what it saved and its outputs' gradients are not needed again
    for (const t of node.saved ?? []) t.dispose();
    for (const o of node.outputs) if (!keepIds.has(o.id)) map.drop(o.id);
  }
  return xs.map((x) => map.get(x.id));
}

/** Replace the engine's gradients() with the freeing backward (idempotent). */
export function installLeanGradients(): void {
  const engine = tf.engine() as unknown as EngineInternals;
  if (engine.leanGradientsInstalled) return;
  const original = engine.gradients.bind(engine);
  const originalAddTapeNode = engine.addTapeNode;
  engine.leanGradientsInstalled = { original, originalAddTapeNode };
  engine.addTapeNode = function addTapeNodeLean(kernelName, inputs, outputs, gradientsFunc, saved, attrs) {
    if (SHAPE_ONLY_SAVES.has(kernelName) && saved.length > 0) {
      const shapes = saved.map((t) => standIn(t as tf.Tensor));
      for (const t of saved) t.dispose();
      saved = shapes;
    }
    originalAddTapeNode.call(engine, kernelName, inputs, outputs, gradientsFunc, saved, attrs);
  };
  engine.gradients = function leanGradients(f, xs, dy, allowNoGradients = false) {
    if (engine.state.gradientDepth > 0) return original(f, xs, dy, allowNoGradients);
    if (xs.length === 0) throw new Error('gradients() received an empty list of xs.');
    if (dy != null && dy.dtype !== 'float32') throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
    const y = engine.scopedRun(() => engine.startTape(), () => engine.endTape(), () => engine.tidy('forward', f));
    if (!(y instanceof tf.Tensor)) throw new Error('The result y returned by f() must be a tensor.');
    const tape = engine.state.activeTape ?? [];
    const nodes = nodesBetween(tape, xs, y);
    if (!allowNoGradients && nodes.length === 0) {
      throw new Error('Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.');
    }
    return engine.tidy('backward', () => {
      const grads = leanBackward(engine, nodes, y, dy ?? tf.ones(y.shape), xs, dy != null);
      for (const node of tape) for (const t of node.saved ?? []) t.dispose();
      engine.state.activeTape = null;
      return { value: y, grads } as unknown as tf.TensorContainer;
    }) as unknown as { value: tf.Tensor; grads: (tf.Tensor | undefined)[] };
  };
}

/** Put tfjs' own gradients() back (tests compare the two). */
export function uninstallLeanGradients(): void {
  const engine = tf.engine() as unknown as EngineInternals;
  if (!engine.leanGradientsInstalled) return;
  engine.gradients = engine.leanGradientsInstalled.original;
  engine.addTapeNode = engine.leanGradientsInstalled.originalAddTapeNode;
  delete engine.leanGradientsInstalled;
}
