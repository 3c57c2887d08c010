import { pluginPackage, type AnyPlugin } from '../framework/api.js';
import { pretrainLdm } from './pretrain-ldm/plugin.js';
import { toyClassifier } from './toy-classifier/plugin.js';
import { toyCrossEntropy } from './toy-classifier/loss.js';
import { scrExperiment } from './scr/plugin.js';
import { rassExperiment } from './rass/plugin.js';
import { segBaselineExperiment } from './rass/seg-baseline.js';
import { evaluateExperiment, restoreThenSegmentExperiment } from './evaluate/plugin.js';

/** Experiment plugins (kind `experiment`), listed explicitly, with the components only they use. */
const plugins: AnyPlugin[] = [toyClassifier, toyCrossEntropy, scrExperiment, rassExperiment, segBaselineExperiment, evaluateExperiment, restoreThenSegmentExperiment, pretrainLdm];

export const experimentsPackage = pluginPackage({ name: 'rass/experiments', plugins });
