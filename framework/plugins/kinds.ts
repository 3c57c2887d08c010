/** The plugin kinds the framework knows. A component node's `type` is `<kind>/<name>`. */
export const PLUGIN_KINDS = [
  'backbone',
  'adapter',
  'loss',
  'degradation',
  'metric',
  'head',
  'dataset',
  'tagger',
  'experiment',
  'tracker',
  'executor',
] as const;

export type PluginKind = (typeof PLUGIN_KINDS)[number];

export function isPluginKind(s: string): s is PluginKind {
  return (PLUGIN_KINDS as readonly string[]).includes(s);
}
