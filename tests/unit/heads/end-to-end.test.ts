import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../../framework/api.js';
import { useBackend } from '../../../framework/engine/backend.js';
import { normalizeImageNet, ResNet, RESNET_PRESETS } from '../../../registry/backbones/resnet/resnet.js';
import { SegLoader } from '../../../registry/datasets/common/loader.js';
import { ShapesDataset } from '../../../registry/datasets/shapes/shapes.js';
import { Mask2FormerHead, MASK2FORMER_DEFAULTS } from '../../../registry/heads/mask2former/mask2former.js';
import { MASK2FORMER_LOSS_DEFAULTS, MaskClassificationLoss } from '../../../registry/losses/mask2former/mask-criterion.js';
import { assertTensorCountFlat } from '../../helpers/memory.js';
import { assertGradientsRegistered } from '../../helpers/gradients.js';

describe('shapes -> loader -> resnet (tiny) -> mask2former (tiny) -> criterion', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('training steps on one batch lower the loss, update head and backbone, and leak nothing', async () => {
    assertGradientsRegistered(['Conv2D', 'GatherV2', 'LogSoftmax', 'ResizeBilinear', 'MaxPool', 'Multiply']);
    const ds = new ShapesDataset({ length: 4, height: 32, width: 32, numClasses: 4, maxObjects: 3, seed: 3 });
    const loader = new SegLoader(ds, { batchSize: 2, seed: 3, shuffle: false });
    const batch = (await loader.epoch(0).next()).value;
    assert.ok(batch);
    const net = new ResNet(RESNET_PRESETS.tiny, null, 1, true);
    const head = new Mask2FormerHead({ ...MASK2FORMER_DEFAULTS, numClasses: 4, inChannels: net.outChannels, inStrides: [4, 8, 16, 32], hidden: 32, queries: 4, decoderLayers: 2, heads: 4, ffn: 64, pixelDecoderLayers: 1, pixelDecoderHeads: 4, pixelDecoderPoints: 2, pixelDecoderFfn: 64, maskDim: 32, groups: 8 }, 2);
    const loss = new MaskClassificationLoss({ ...MASK2FORMER_LOSS_DEFAULTS, numClasses: 4, numPoints: 64 });
    const x = normalizeImageNet(batch.images, 2, 32, 32);
    const targets = { labels: batch.labels, batch: 2, height: 32, width: 32, ignoreIndex: 255 };
    const vars = [...head.params.values(), ...[...net.store.params.values()].map((p) => p.variable)];
    const probe = (net.store.params.get('layer1.0.conv2.weight') as { variable: tf.Variable }).variable;
    const before0 = probe.dataSync().slice();
    const opt = tf.train.adam(3e-3);
    const values: number[] = [];
    await assertTensorCountFlat((i) => {
      const v = opt.minimize(() => loss.compute(head.forward(net.features(x)), targets, Rng.derive(3, 'step', i)).total, true, vars);
      values.push((v as tf.Scalar).dataSync()[0]);
      v?.dispose();
    }, { warmup: 2, steps: 6, label: 'resnet + mask2former step' });
    assert.ok(values[values.length - 1] < values[0], `loss ${values.map((v) => v.toFixed(3)).join(' -> ')}`);
    assert.notDeepEqual(probe.dataSync(), before0, 'backbone conv kernels were trained');
    tf.dispose([x]);
    opt.dispose();
    head.dispose();
    net.dispose();
  });
});
