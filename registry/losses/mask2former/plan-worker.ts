/**
 * The criterion's helper thread: plans the layers handed to it (planLayerHost with training's
 * random points), exactly as the main thread would. Loaded by `PlanHelper` in mask-criterion.ts.
 */
import { Rng, serveSync, type RngKey, type RngState } from '../../../framework/host.js';
import { planLayerHost, rngHostPoints, type HostLayerPlan, type LayerValues, type MaskCriterionOptions } from './host-plan.js';
import type { ImageTargets } from './targets.js';

/** One job: some layers' values and the state of each layer's random stream. */
export interface PlanJob {
  layers: { values: LayerValues; rng: { keys: readonly RngKey[]; state: RngState } }[];
  targets: ImageTargets[];
  o: MaskCriterionOptions;
}

serveSync((job: PlanJob): HostLayerPlan[] => job.layers.map((l) => planLayerHost(l.values, job.targets, rngHostPoints(Rng.restore(l.rng.keys, l.rng.state), job.o), job.o)));
