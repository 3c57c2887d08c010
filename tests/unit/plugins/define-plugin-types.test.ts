import { test } from 'node:test';
import assert from 'node:assert/strict';
import { definePlugin } from '../../../framework/api.js';

test('definePlugin infers option types from the schema and keeps the plugin plain', async () => {
  const p = definePlugin({
    kind: 'loss',
    name: 'scaled-l1',
    description: 'test plugin',
    schema: { type: 'object', properties: { weight: { type: 'number', default: 1 }, mode: { enum: ['mean', 'sum'] } }, required: ['weight'], additionalProperties: false } as const,
    create: (o) => {
      // compile-time check: o.weight is a number, o.mode is 'mean' | 'sum' | undefined
      const w: number = o.weight;
      const m: 'mean' | 'sum' | undefined = o.mode;
      return { w, m };
    },
  });
  assert.equal(p.kind, 'loss');
  assert.equal(p.version, '0.0.0');
  assert.ok(Object.isFrozen(p));
  assert.deepEqual(await p.create({ weight: 2, mode: 'sum' }, undefined as never), { w: 2, m: 'sum' });
  assert.throws(() => definePlugin({ kind: 'loss', name: 'Bad Name', description: '', schema: {} as const, create: () => 1 }), /lower-case/);
});
