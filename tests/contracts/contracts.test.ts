/**
 * Contract suites per plugin kind (issue 17, deliverable 6): every registered dataset,
 * degradation, metric, loss, head, backbone, adapter and tagger plugin -- the built-in
 * registry and the experiments' component plugins -- runs the same four checks:
 *  - schema defaults: built through the config layer (`buildNode`) from its minimal example, the
 *    plugin's `create` receives every option the example left out at its schema default;
 *  - determinism from seed: two builds with one seed give the same result on a fixed input
 *    (and, where the plugin draws or initialises randomly, another seed gives another result);
 *  - tensor count flat: repeated calls leave no live tensors behind, and disposing the value
 *    frees what building it allocated;
 *  - errors are UserErrors: an unknown option, a wrong-typed option or a missing required one
 *    fails validation with a UserError naming the key.
 * The examples (options and how to exercise each plugin) live in examples.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildNode, pluginPackage, PluginRegistry, UserError, type AnyPlugin, type ComponentNode } from '../../framework/api.js';
import { useBackend } from '../../framework/engine/backend.js';
import { assertTensorCountFlat } from '../helpers/memory.js';
import { CONTRACT_KINDS, contractPlugins, EXAMPLES } from './examples.js';
import { cleanup, makeFixtures, type Fixtures } from './fixtures.js';

type Schema = { properties?: Record<string, { type?: string | string[]; enum?: unknown[]; default?: unknown }>; required?: readonly string[] };

/** The options each `create` received, by config path: what validation handed the plugin. */
const received = new Map<string, Record<string, unknown>>();
const registry = new PluginRegistry();
registry.loadPackage(
  pluginPackage({
    name: 'contracts',
    plugins: contractPlugins().map((p) => ({
      ...p,
      create: (o: unknown, ctx: { path: string }) => {
        received.set(ctx.path, structuredClone(o) as Record<string, unknown>);
        return (p.create as (o: unknown, c: unknown) => unknown)(o, ctx);
      },
    })) as AnyPlugin[],
  }),
);

const quiet = { info: () => undefined, warn: () => undefined, debug: () => undefined };
const build = (node: ComponentNode, seed: number, path: string) => buildNode<unknown>(node, registry, { seed, log: quiet, path });

/** A value of the wrong JSON type for a property schema (the first type that cannot pass). */
function wrongValue(prop: { type?: string | string[]; enum?: unknown[] }): unknown {
  if (prop.enum) return '__not-one-of-the-enum__';
  const t = Array.isArray(prop.type) ? prop.type : [prop.type];
  if (!t.includes('string')) return 'not-a-number-or-list';
  return 12345;
}

async function rejectsNaming(p: Promise<unknown>, key: string, what: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof UserError, `${what}: expected a UserError, got ${String(e)}`);
    assert.ok(e.message.includes(key), `${what}: the message does not name "${key}": ${e.message}`);
    return true;
  });
}

let fx: Fixtures;
before(async () => {
  await useBackend('cpu');
  fx = await makeFixtures();
});
after(() => cleanup(fx));

for (const kind of CONTRACT_KINDS) {
  describe(`${kind} contract`, () => {
    for (const plugin of contractPlugins().filter((p) => p.kind === kind)) {
      const type = `${plugin.kind}/${plugin.name}`;
      const ex = EXAMPLES[type];
      if (!ex) continue; // coverage.test.ts fails for this plugin
      const schema = plugin.schema as Schema;
      const node = (extra: Record<string, unknown> = {}) => ({ type, ...ex.options(fx), ...extra }) as ComponentNode;

      describe(type, () => {
        it('schema defaults: validation fills every option the example leaves out', async () => {
          const path = `contract.${type}.defaults`;
          const value = await build(node(), 3, path);
          const got = received.get(path);
          assert.ok(got, `${type}: create was not called for ${path}`);
          const given = ex.options(fx);
          for (const [key, prop] of Object.entries(schema.properties ?? {})) {
            if (key in given || prop.default === undefined) continue;
            assert.deepEqual(got[key], prop.default, `${type}.${key}: create got ${JSON.stringify(got[key])}, the schema default is ${JSON.stringify(prop.default)}`);
          }
          ex.dispose?.(value);
        });

        it('determinism from seed, tensor count flat, dispose frees the build', async () => {
          const start = tf.memory().numTensors;
          const a = await build(node(), 3, `contract.${type}.a`);
          const b = await build(node(), 3, `contract.${type}.b`);
          const ra = await ex.run(a, fx, 3);
          assert.deepEqual(await ex.run(b, fx, 3), ra, `${type}: two builds with seed 3 differ on the same input`);
          assert.deepEqual(await ex.run(a, fx, 3), ra, `${type}: a second call on the same value differs`);
          if (ex.seeded) {
            const c = await build(node(), 4, `contract.${type}.c`);
            assert.notDeepEqual(await ex.run(c, fx, 4), ra, `${type}: seed 4 gives the same result as seed 3`);
            ex.dispose?.(c);
          }
          await assertTensorCountFlat(() => ex.run(a, fx, 3), { warmup: 1, steps: 2, label: type });
          if (ex.dispose && !ex.disposeLeak) {
            ex.dispose(a);
            ex.dispose(b);
            assert.equal(tf.memory().numTensors, start, `${type}: building and disposing two values left tensors behind`);
          }
        });

        it('errors are UserErrors naming the key: unknown option, wrong type, missing required option', async () => {
          await rejectsNaming(build(node({ notAnOption: 1 }), 3, `contract.${type}.unknown`), 'notAnOption', `${type} with an unknown option`);
          const typed = Object.entries(schema.properties ?? {}).find(([, p]) => p.type !== undefined || p.enum !== undefined);
          if (typed) {
            const [key, prop] = typed;
            await rejectsNaming(build(node({ [key]: wrongValue(prop) }), 3, `contract.${type}.wrong`), key, `${type} with ${key} of the wrong type`);
          }
          for (const key of schema.required ?? []) {
            const n = node() as unknown as Record<string, unknown>;
            delete n[key];
            await rejectsNaming(build(n as ComponentNode, 3, `contract.${type}.missing`), key, `${type} without ${key}`);
          }
        });
      });
    }
  });
}
