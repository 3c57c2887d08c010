import type { PluginKind } from './kinds.js';

/** A minimal leveled logger; the runner supplies one that writes to the console and the run log. */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  debug(msg: string): void;
}

export const consoleLogger: Logger = {
  info: (m) => console.log(m),
  warn: (m) => console.warn(m),
  debug: (m) => {
    if (process.env.RASS_DEBUG) console.log(m);
  },
};

/** A config node that names a plugin: `{ type: "kind/name", ...options }`. */
export interface ComponentNode {
  type: string;
  [option: string]: unknown;
}

export function isComponentNode(v: unknown): v is ComponentNode {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { type?: unknown }).type === 'string'
    && /^[a-z]+\/[^/]+$/.test((v as { type: string }).type);
}

/** What a plugin's `create` receives besides its options. */
export interface PluginContext {
  /** JSON path of the node being built, e.g. `experiment.model.unet`: use it in error messages. */
  readonly path: string;
  /** The run's master seed (derive per-component streams from it, never use Math.random). */
  readonly seed: number;
  readonly log: Logger;
  /** Resolve a path option relative to the config file that set it (or the working directory). */
  resolvePath(p: string): string;
  /**
   * Build a nested component node (already validated with defaults applied). `expectKind`
   * makes a node of the wrong kind an error naming `path`.
   */
  build<T = unknown>(node: ComponentNode, opts?: { expectKind?: PluginKind; path?: string }): Promise<T>;
  /** Free-form services the runner provides (the run handle, abort signal, ...), keyed by name. */
  readonly services: Readonly<Record<string, unknown>>;
}
