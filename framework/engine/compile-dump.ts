import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `RASS_COMPILE_DUMP=<dir>`: every function compileStep registers is also written to
 * `<dir>/<name>.<pid>.json` (its nodes, attrs, constants and input/output refs), so it can be rebuilt
 * and profiled per node outside the run: `scripts/profile-graph.py` runs it as a function under
 * TensorFlow's profiler (or, with --session, in a TF1 session with full tracing) and prints where
 * the time goes. The eager context the binding uses collects no step statistics, hence the detour.
 */
export interface DumpNode {
  op: string;
  attrs: { name: string; type: number; value: unknown }[];
  inputs: number[];
  tensor?: number;
  /** Const nodes: the value's shape (the binding handle does not carry it) */
  shape?: number[];
}

interface DumpBinding {
  tensorDataSync(id: number): ArrayLike<number>;
}

export function compileDumpDir(): string | undefined {
  return process.env.RASS_COMPILE_DUMP || undefined;
}

const dtypeOf = (values: ArrayLike<number>): string =>
  values instanceof Int32Array ? 'int32' : values instanceof Uint8Array ? 'bool' : values instanceof Float32Array ? 'float32' : 'float64';

export function dumpFunction(dir: string, b: DumpBinding, name: string, nodes: DumpNode[], inputs: number[], outputs: number[]): void {
  const out = nodes.map((n) => {
    if (n.op !== 'Const' || n.tensor === undefined) return { op: n.op, attrs: n.attrs, inputs: n.inputs };
    const values = b.tensorDataSync(n.tensor);
    const bytes = ArrayBuffer.isView(values) ? Buffer.from(values.buffer, values.byteOffset, values.byteLength) : Buffer.from(Float32Array.from(values).buffer);
    return { op: 'Const', attrs: [], inputs: [], shape: n.shape ?? [values.length], dtype: dtypeOf(values), data: bytes.toString('base64') };
  });
  mkdirSync(dir, { recursive: true });
  // the process id keeps processes that number their functions alike (a bench and its XLA run) apart
  writeFileSync(join(dir, `${name}.${process.pid}.json`), JSON.stringify({ name, nodes: out, inputs, outputs }));
}
