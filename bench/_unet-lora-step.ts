/**
 * One benchmark subject in its own process (peak RSS is per process): the tiny UNet (or the
 * spec's config) with a
 * rank-4 LoRA on to_q/to_k/to_v/to_out.0, loss = mean(output^2), gradients of the LoRA
 * weights, as a user trains it. `node dist/bench/_unet-lora-step.js '<json spec>'` prints one
 * JSON line: median step seconds and the process's peak RSS.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendPreference } from '../framework/engine/backend.js';
import { Rng } from '../framework/engine/rng.js';
import { compileStep } from '../framework/engine/compile.js';
import { LoraModel } from '../registry/adapters/lora/lora.js';
import { TINY_UNET } from '../registry/backbones/sd/presets.js';
import type { UNetConfig } from '../registry/backbones/sd/unet.js';
import { UNet2DConditionModel } from '../registry/backbones/sd/unet.js';

export interface LoraStepSpec {
  latent: number;
  batch: number;
  tokens: number;
  iters: number;
  threads: number;
  backend: BackendPreference;
  checkpoint: 'none' | 'blocks';
  attentionChunk: number;
  /** run the fwd+bwd through compileStep (native only): one TensorFlow function per step; 'xla': through XLA */
  compile?: boolean | 'xla';
  /** the UNet (default: the tiny preset); e.g. SD21_BLOCK_UNET for backbones.sd21-block-train */
  config?: UNetConfig;
}

export interface LoraStepResult {
  step_s: number;
  cpu_s: number;
  peak_rss_bytes: number;
  backend: string;
  threads: number | undefined;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] as string) as LoraStepSpec;
  const choice = await initBackend({ prefer: spec.backend, threads: spec.threads, log: null });
  const config = spec.config ?? TINY_UNET;
  const unet = new UNet2DConditionModel(config, 0);
  unet.store.memory.checkpoint = spec.checkpoint;
  unet.store.memory.attentionChunk = spec.attentionChunk;
  const lora = new LoraModel(unet.store, 0);
  const adapter = lora.add('bench', { r: 4, alpha: 4, targetModules: ['to_q', 'to_k', 'to_v', 'to_out.0'] });
  const vars = [...adapter.layers.values()].flatMap((l) => [l.A, l.B]);
  const r = Rng.derive(0, 'bench-lora');
  const c = config.in_channels;
  const x = tf.tensor4d(r.fillNormal(new Float32Array(spec.batch * spec.latent * spec.latent * c)) as Float32Array, [spec.batch, spec.latent, spec.latent, c]);
  const ctx = tf.tensor3d(r.fillNormal(new Float32Array(spec.batch * spec.tokens * config.cross_attention_dim)) as Float32Array, [spec.batch, spec.tokens, config.cross_attention_dim]);
  const fwdBwd = ({ x: xi, ctx: ci }: { x: tf.Tensor4D; ctx: tf.Tensor3D }) => {
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(unet.run(xi, 999, ci))) as tf.Scalar, vars);
    return { loss: value, ...grads };
  };
  const step = compileStep(fwdBwd, { mode: spec.compile === 'xla' ? 'xla' : spec.compile ? 'auto' : 'off', name: 'bench-unet-lora', log: () => {} });
  // compiled: the first calls record (two agreeing recordings), then it runs as one function
  // (through XLA the third call also compiles: a fourth untimed call)
  if (spec.compile) for (let i = 0; i < (spec.compile === 'xla' ? 4 : 3); i++) tf.dispose(Object.values(step.call({ x, ctx })));
  if (spec.compile && step.status().state !== 'compiled') throw new Error(`the step did not compile: ${step.status().reason}`);
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i <= spec.iters; i++) {
    const s = performance.now();
    const c0 = process.cpuUsage();
    const out = step.call({ x, ctx });
    for (const g of Object.values(out)) g.dataSync();
    tf.dispose(Object.values(out));
    times.push((performance.now() - s) / 1000);
    const c1 = process.cpuUsage(c0);
    cpu.push((c1.user + c1.system) / 1e6);
  }
  const measured = times.slice(1).sort((a, b) => a - b);
  const result: LoraStepResult = {
    step_s: measured[Math.floor(measured.length / 2)] as number,
    // CPU seconds (all threads) per step: what a busy shared machine inflates least
    cpu_s: (cpu.slice(1).sort((a, b) => a - b)[Math.floor((cpu.length - 1) / 2)] as number),
    // maxRSS is in KiB
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    backend: choice.name,
    threads: choice.threads,
  };
  console.log(JSON.stringify(result));
}

await main();
