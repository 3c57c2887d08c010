import type { PluginKind } from './kinds.js';

/**
 * Schema fragment for an option that is itself a component node of `kind`
 * (`{ type: "loss/mse", ...options }`). The fragment only checks the `type`; the node's
 * own options are validated against that plugin's schema by the config validator, which
 * walks every nested component node.
 */
export function componentSchema<K extends PluginKind>(kind: K, description?: string) {
  return {
    type: 'object',
    required: ['type'],
    properties: { type: { type: 'string', pattern: `^${kind}/` } },
    additionalProperties: true,
    ...(description ? { description } : {}),
  } as const;
}
