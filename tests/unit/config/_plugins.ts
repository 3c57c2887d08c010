import { definePlugin, pluginPackage, componentSchema } from '../../../framework/api.js';

/** A small plugin package for config tests: an experiment with nested component options. */
export const testPackage = pluginPackage({
  name: 'config-test-plugins',
  plugins: [
    definePlugin({
      kind: 'experiment',
      name: 'train',
      description: 'test experiment',
      schema: {
        type: 'object',
        required: ['steps'],
        properties: {
          steps: { type: 'integer', minimum: 1 },
          optimizer: {
            type: 'object',
            additionalProperties: false,
            properties: { lr: { type: 'number' }, betas: { type: 'array', items: { type: 'number' } }, weight_decay: { type: 'number', default: 0 }, momentum: { type: 'number' } },
          },
          loss: { ...componentSchema('loss'), default: { type: 'loss/mse' } },
          stages: { type: 'array' },
          extra: { type: 'string' },
          data_dir: { type: 'string' },
          home: { type: 'string' },
          fallback: { type: 'string' },
          literal: { type: 'string' },
        },
        // widened on purpose: json-schema-to-ts gives up on this schema's depth, and the test
        // only needs runtime validation
      } as Record<string, unknown>,
      create: (o) => ({ o }),
    }),
    definePlugin({
      kind: 'loss',
      name: 'mse',
      description: 'test loss',
      schema: { type: 'object', properties: { weight: { type: 'number', default: 1 } } } as const,
      create: (o, ctx) => ({ weight: o.weight, path: ctx.path, file: ctx.resolvePath('w.bin') }),
    }),
  ],
});
