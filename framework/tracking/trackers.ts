import { buildNode } from '../config/index.js';
import type { ComponentNode } from '../plugins/context.js';
import { pluginPackage } from '../plugins/plugin-package.js';
import { PluginRegistry } from '../plugins/registry.js';
import type { RunTracker, Tracker, TrackerRunInfo } from './tracker.js';
import { mlflowTrackerPlugin } from './mlflow/plugin.js';

/** The trackers the framework ships (the CLI registers them; registries without them fall back to these). */
export const builtinTrackerPlugins = [mlflowTrackerPlugin];

/**
 * The tracker nodes of a run config: `tracking.trackers` (a list of `{type: tracker/NAME, ...}`)
 * when given, else today's default: MLflow with the `tracking.mlflow` options (it applies only
 * when a URI is set in the config or the environment).
 */
export function trackerNodes(config: Record<string, unknown>): ComponentNode[] {
  const tracking = (config.tracking ?? {}) as { trackers?: ComponentNode[]; mlflow?: Record<string, unknown> };
  if (Array.isArray(tracking.trackers)) return tracking.trackers;
  return [{ type: 'tracker/mlflow', ...(tracking.mlflow ?? {}) }];
}

let fallback: PluginRegistry | undefined;
function builtinRegistry(): PluginRegistry {
  if (!fallback) {
    fallback = new PluginRegistry();
    fallback.loadPackage(pluginPackage({ name: 'rass/framework', plugins: builtinTrackerPlugins }));
  }
  return fallback;
}

/** Build the trackers a run config selects (validated against each plugin's schema). */
export async function buildTrackers(config: Record<string, unknown>, registry: PluginRegistry): Promise<Tracker[]> {
  const out: Tracker[] = [];
  for (const [i, node] of trackerNodes(config).entries()) {
    const [kind, name] = String(node.type).split('/');
    // a registry built without the framework's own plugins (library use, tests) still gets them
    const reg = kind === 'tracker' && !registry.has('tracker', name) && builtinRegistry().has('tracker', name) ? builtinRegistry() : registry;
    out.push(await buildNode<Tracker>(node, reg, { path: `tracking.trackers[${i}]` }));
  }
  return out;
}

/**
 * Start the trackers for a run the sweep executor writes (a sweep's parent, a dead trial's
 * final status). Unlike the runner, which fails a run on a bad tracking config, these runs
 * already exist: a tracker that cannot start is a warning, and the journal keeps everything
 * for later.
 */
export async function startTrackers(trackers: readonly Tracker[], run: TrackerRunInfo, warn: (m: string) => void): Promise<RunTracker[]> {
  const started: RunTracker[] = [];
  for (const t of trackers) {
    try {
      const rt = await t.start(run);
      if (rt) started.push(rt);
    } catch (e) {
      warn(`tracker failed to start for ${run.dir}: ${(e as Error).message}`);
    }
  }
  return started;
}

/** buildTrackers for runs that already exist (see startTrackers): a tracker that cannot be built is a warning. */
export async function trackersOrWarn(config: Record<string, unknown>, registry: PluginRegistry, warn: (m: string) => void): Promise<Tracker[]> {
  try {
    return await buildTrackers(config, registry);
  } catch (e) {
    warn(`trackers not started: ${(e as Error).message}`);
    return [];
  }
}
