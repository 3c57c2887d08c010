/**
 * Child of compiled-attention-memory.test.ts (its own process, so its peak RSS is its own): the
 * tiny UNet's rank-4 LoRA step at a 64x64 latent (4,096 tokens in its first attention layers),
 * batch 2, compiled. Prints one JSON line: the peak RSS after the eager recording calls, the
 * growth of the peak over the compiled calls, and the compile state.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../framework/engine/backend.js';
import { compileStep } from '../../../framework/engine/compile.js';
import { Rng } from '../../../framework/engine/rng.js';
import { LoraModel } from '../../../registry/adapters/lora/lora.js';
import { TINY_UNET } from '../../../registry/backbones/sd/presets.js';
import { UNet2DConditionModel } from '../../../registry/backbones/sd/unet.js';

await initBackend({ prefer: 'tensorflow', threads: 2, log: null });
const unet = new UNet2DConditionModel(TINY_UNET, 0);
const adapter = new LoraModel(unet.store, 0).add('t', { r: 4, alpha: 4, targetModules: ['to_q', 'to_k', 'to_v', 'to_out.0'] });
const vars = [...adapter.layers.values()].flatMap((l) => [l.A, l.B]);
const r = Rng.derive(3, 'attention-memory');
const x = tf.tensor4d(r.fillNormal(new Float32Array(2 * 64 * 64 * 4)) as Float32Array, [2, 64, 64, 4]);
const ctx = tf.tensor3d(r.fillNormal(new Float32Array(2 * 77 * TINY_UNET.cross_attention_dim)) as Float32Array, [2, 77, TINY_UNET.cross_attention_dim]);
const step = compileStep(({ x: xi, ctx: ci }: { x: tf.Tensor4D; ctx: tf.Tensor3D }) => {
  const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(unet.run(xi, 999, ci))) as tf.Scalar, vars);
  return { loss: value, ...grads };
}, { mode: 'auto', name: 'attention-memory', log: () => {} });
const run = () => {
  const out = step.call({ x, ctx });
  for (const t of Object.values(out)) t.dataSync();
  tf.dispose(Object.values(out));
};
for (let i = 0; i < 2; i++) run(); // eager: two recordings that agree
const eagerPeak = process.resourceUsage().maxRSS;
for (let i = 0; i < 3; i++) run(); // the first registers the function; each runs it
console.log(JSON.stringify({ eagerPeakMiB: eagerPeak / 1024, grownMiB: (process.resourceUsage().maxRSS - eagerPeak) / 1024, state: step.status().state }));
