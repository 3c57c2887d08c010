import { definePlugin, type Experiment } from '../../framework/api.js';
import { runRass, type RassOptions } from './train.js';
import { buildComponents, RASS_SCHEMA } from './plugin.js';

// the RASS options without the SCR prior: a baseline never loads a restoration adapter
const { scr_adapter: _scrAdapter, merge_scr: _mergeScr, ...baselineProperties } = RASS_SCHEMA.properties;

/**
 * The DT / FT baselines of the RASS paper as their own experiment: the same diffusion backbone
 * (no SCR adapter), Seg LoRA, projections, head, loss, data and budget as experiment/rass, so a
 * comparison differs only in the prior; `train.input` is the one key between DT (hq) and FT (lq).
 * It runs experiment/rass's training and evaluation code, so its numbers are RASS-without-SCR
 * exactly (a test checks this).
 */
export const segBaselineExperiment = definePlugin({
  kind: 'experiment',
  name: 'seg-baseline',
  description: 'DT / FT segmentation baselines: the diffusion backbone without an SCR prior + Seg LoRA + head, trained on clean (DT, train.input: hq) or degraded (FT, lq) images',
  docs: `The baselines the RASS paper compares against, with everything but the prior shared with
experiment/rass: backbone/one-step (taps, timestep), a new Seg LoRA (and conv_in when the UNet node marks it
trainable), 1x1 projections, the head and its loss, optimiser, schedule, clipping, compiled steps, validation on
the degraded and clean splits, and the saved segmenter (\`model/\`, which experiment/evaluate and
experiment/restore-then-segment load). \`train.input: hq\` is DT (trained on clean images, tested on degraded
ones), \`lq\` is FT (fine-tuned on degraded images). There is no \`scr_adapter\` option: a baseline with an SCR
prior is experiment/rass.`,
  schema: { ...RASS_SCHEMA, properties: baselineProperties },
  async create(o, ctx): Promise<Experiment> {
    const opts = { ...(o as unknown as RassOptions), merge_scr: false };
    const c = await buildComponents(opts, ctx);
    return { run: (rc) => runRass(opts, c, rc) };
  },
});
