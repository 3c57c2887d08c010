/**
 * framework/'s layer order (docs/architecture.md) is enforced: the lint rule fires on an import
 * against the order and on a plugin reaching past the public API, and framework/ has no import
 * cycle at file level (type-only imports included).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, resolve } from 'node:path';
import { ESLint } from 'eslint';

const root = process.cwd();

async function layerMessages(filePath: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: root });
  const [result] = await eslint.lintText(code, { filePath: join(root, filePath) });
  return result.messages.filter((m) => m.ruleId === 'rass/layers').map((m) => m.message);
}

test('lint: an import against the layer order fails', async () => {
  const bad = await layerMessages('framework/engine/new-file.ts', "import { runExperiment } from '../runner/runner.js';\nexport const x = runExperiment;\n");
  assert.equal(bad.length, 1, 'engine -> runner must be reported');
  assert.match(bad[0], /framework\/engine \(layer 1\) may not import framework\/runner \(layer 5\)/);
  // the same folder, and a lower layer, are fine
  assert.deepEqual(await layerMessages('framework/runner/new-file.ts', "import { Optimizer } from '../engine/optim.js';\nimport { runExperiment } from './runner.js';\nexport const x = [Optimizer, runExperiment];\n"), []);
  // one layer, two folders: refused too (no cycles between siblings)
  assert.equal((await layerMessages('framework/config/new-file.ts', "import type { Experiment } from '../contracts/experiment.js';\nexport type X = Experiment;\n")).length, 1);
  // re-exports and dynamic imports count
  assert.equal((await layerMessages('framework/plugins/new-file.ts', "export * from '../sweep/run-sweep.js';\n")).length, 1);
  assert.equal((await layerMessages('framework/tracking/new-file.ts', "export const m = () => import('../cli/main.js');\n")).length, 1);
  assert.equal((await layerMessages('framework/tracking/new-file.ts', "export const m = () => import(`../cli/main.js`);\n")).length, 1, 'a template-literal import');
  assert.equal((await layerMessages('framework/engine/new-file.ts', "export type R = import('../runner/runner.js').RunOutcome;\n")).length, 1, 'an import type');
  assert.equal((await layerMessages('framework/engine/new-file.ts', "declare const require: (s: string) => unknown;\nexport const r = require('../sweep/spec.js');\n")).length, 1, 'a require call');
});

test('lint: plugins reach framework/ only through its public API', async () => {
  const bad = await layerMessages('registry/losses/new-loss.ts', "import type { ImageLoss } from '../../framework/contracts/loss.js';\nexport type X = ImageLoss;\n");
  assert.equal(bad.length, 1);
  assert.match(bad[0], /public API/);
  assert.deepEqual(await layerMessages('registry/losses/new-loss.ts', "import type { ImageLoss } from '../../framework/api.js';\nexport type X = ImageLoss;\n"), []);
});

/** Every relative import and re-export of each framework/ source file, as repo-relative .ts paths. */
function importGraph(): Map<string, string[]> {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith('.ts')) files.push(join(dir, e.name));
    }
  };
  walk('framework');
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  const spec = /(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s*'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g;
  for (const f of files) {
    const text = readFileSync(join(root, f), 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(spec)) {
      const target = normalize(join(dirname(f), (m[1] ?? m[2]).replace(/\.js$/, '.ts')));
      if (known.has(target)) deps.push(target);
    }
    graph.set(f, deps);
  }
  return graph;
}

/** Strongly connected components with more than one file (Tarjan), i.e. the import cycles. */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>(), out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next); low.set(v, next); next++; stack.push(v); on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do { w = stack.pop()!; on.delete(w); scc.push(w); } while (w !== v);
      // (a module importing its own namespace, as api.ts does to hand itself to plugins, is not a cycle)
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

test('framework/ has no import cycles (type-only imports included)', () => {
  const graph = importGraph();
  assert.ok(graph.size > 80, `read only ${graph.size} framework files from ${resolve(root)}`);
  // the detector itself: a made-up cycle is found
  assert.deepEqual(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]])), [['a', 'b', 'c']]);
  assert.deepEqual(cycles(graph), []);
});
