/**
 * `degradation/pipeline`: stages composed from YAML, run one sample at a time (sizes may differ
 * per sample after random resizes); `degradation/random-order`: its stages in a random order per
 * sample (Real-ESRGAN's final "resize+sinc then JPEG, or JPEG then resize+sinc").
 */
import * as tf from '@tensorflow/tfjs-core';
import { definePlugin, UserError, isComponentNode, type ComponentNode, type Degradation, type DegradationContext, type PluginContext } from '../../../framework/api.js';
import { stageProperties } from '../common/stages.js';

const stagesSchema = {
  type: 'array',
  minItems: 0,
  description: 'stages: component nodes of kind degradation (each may set `id` and `prob`)',
  items: { type: 'object', required: ['type'], properties: { type: { type: 'string', pattern: '^degradation/' } }, additionalProperties: true },
} as const;

async function buildStages(nodes: readonly unknown[], ctx: PluginContext, owner: string): Promise<Degradation[]> {
  const ids = new Set<string>();
  const out: Degradation[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i];
    const path = `${ctx.path}.stages[${i}]`;
    if (!isComponentNode(node)) throw new UserError(`${path}: a stage must be a component node { type: degradation/NAME, ... }`);
    const id = typeof node.id === 'string' ? node.id : `${i}-${node.type.slice('degradation/'.length)}`;
    if (ids.has(id)) throw new UserError(`${path}: duplicate stage id "${id}" in ${owner}`);
    ids.add(id);
    out.push(await ctx.build<Degradation>({ ...(node as ComponentNode), id }, { expectKind: 'degradation', path }));
  }
  return out;
}

/** Run `stages` in `order` on one sample (batch of 1), disposing intermediates. */
async function runStages(x: tf.Tensor4D, stages: readonly Degradation[], order: readonly number[], ctx: DegradationContext): Promise<tf.Tensor4D> {
  let cur = x;
  for (const k of order) {
    let next: tf.Tensor4D;
    try {
      next = await stages[k].apply(cur, ctx);
    } catch (e) {
      if (cur !== x) cur.dispose();
      throw e;
    }
    if (next !== cur && cur !== x) cur.dispose();
    cur = next;
  }
  return cur;
}

/** Split a batch, run `perSample` on each sample with its own context, and stack the results. */
async function eachSample(
  batch: tf.Tensor4D, ctx: DegradationContext, id: string, scale: number | undefined,
  perSample: (x: tf.Tensor4D, sub: DegradationContext, i: number) => Promise<tf.Tensor4D>,
): Promise<tf.Tensor4D> {
  const [n, h, w] = batch.shape;
  if (ctx.rng.length !== n) throw new RangeError(`degradation ${id}: ${ctx.rng.length} random streams for a batch of ${n}`);
  const top = ctx.origin === undefined;
  const origin = ctx.origin ?? { height: h, width: w, scale: scale ?? 1 };
  const outs: tf.Tensor4D[] = [];
  try {
    for (let i = 0; i < n; i++) {
      let rec: Record<string, unknown> | undefined;
      if (ctx.record) {
        if (top) rec = ctx.record[i];
        else ctx.record[i][id] = rec = {};
      }
      const sub: DegradationContext = { rng: [ctx.rng[i].fork(id)], record: rec ? [rec] : undefined, origin };
      const xi = n === 1 ? batch : tf.slice(batch, [i, 0, 0, 0], [1, -1, -1, -1]);
      const yi = await perSample(xi, sub, i);
      if (xi !== batch && yi !== xi) xi.dispose();
      outs.push(yi === batch ? tf.clone(batch) : yi);
    }
  } catch (e) {
    tf.dispose(outs);
    throw e;
  }
  if (n === 1) return outs[0];
  if (new Set(outs.map((t) => t.shape.join())).size > 1) {
    const shapes = outs.map((t) => t.shape.slice(1, 3).join('x')).join(', ');
    tf.dispose(outs);
    throw new RangeError(`degradation ${id}: samples ended with different sizes (${shapes}); end the pipeline with a resize to: origin`);
  }
  const out = tf.concat(outs, 0) as tf.Tensor4D;
  tf.dispose(outs);
  return out;
}

export const pipelinePlugin = definePlugin({
  kind: 'degradation',
  name: 'pipeline',
  description: 'a sequence of degradation stages (nested pipelines allowed); `scale` sets the final size (input/scale)',
  docs: 'Each sample runs alone with its own stream forked by stage id: the result for (seed, sample index) never depends on the batch. `scale` (1 or 4) is what `resize to: origin` stages aim for. A nested pipeline records its stages under its own id.',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['stages'],
    properties: {
      ...stageProperties,
      scale: { type: 'integer', minimum: 1, default: 1, description: 'output is input size / scale (set on the outermost pipeline)' },
      stages: stagesSchema,
    },
  } as const,
  async create(o, ctx): Promise<Degradation> {
    const id = o.id ?? 'pipeline';
    const stages = await buildStages(o.stages, ctx, `pipeline ${id}`);
    const order = stages.map((_, i) => i);
    return {
      id,
      apply: (batch, dctx) => eachSample(batch, dctx, id, o.scale, async (x, sub) => {
        if (sub.rng[0].random() >= o.prob) {
          if (sub.record) sub.record[0].applied = false;
          return x;
        }
        return runStages(x, stages, order, sub);
      }),
    };
  },
});

export const randomOrderPlugin = definePlugin({
  kind: 'degradation',
  name: 'random-order',
  description: 'runs its stages in a random order per sample (records the order)',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['stages'],
    properties: { ...stageProperties, stages: stagesSchema },
  } as const,
  async create(o, ctx): Promise<Degradation> {
    const id = o.id ?? 'random-order';
    const stages = await buildStages(o.stages, ctx, `random-order ${id}`);
    return {
      id,
      apply: (batch, dctx) => eachSample(batch, dctx, id, undefined, async (x, sub) => {
        const r = sub.rng[0];
        if (r.random() >= o.prob) {
          if (sub.record) sub.record[0].applied = false;
          return x;
        }
        const order = r.permutation(stages.length);
        if (sub.record) sub.record[0].order = order.map((k) => stages[k].id);
        return runStages(x, stages, order, sub);
      }),
    };
  },
});
