import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  Optimizer,
  Rng,
  UserError,
  loadCheckpoint,
  restoreWeights,
  saveCheckpoint,
  tf,
  type Backbone,
  type CompileMode,
  type ConditionalUNet,
  type LatentAutoencoder,
  type LoadedCheckpoint,
  type PromptEncoder,
  type RunContext,
  type SegDataset,
  type Tagger,
} from '../../framework/api.js';
import { DataOrder, imageBatch, loadImageSet, psnr, toUint8Images, type ImageSet } from './data.js';
import { ddimSample, decodeLatents } from './ddim.js';
import { alphasCumprod } from './noise-schedule.js';
import { encodePng } from '../../framework/api.js';
import { tileGrid } from '../common/images.js';
import { stepCheckpointName } from '../common/train.js';
import { TrainStep } from '../common/train-step.js';

export interface PhaseOptions {
  steps: number;
  batch_size: number;
  lr: number;
  min_lr_ratio: number;
  warmup: number;
  weight_decay: number;
  max_grad_norm: number;
}

export interface PretrainOptions {
  holdout: number;
  vae_phase: PhaseOptions & { l1_weight: number; mse_weight: number; kl_weight: number; crop: number; eval_every: number; init: 'default' | 'zero-residual' };
  unet_phase: PhaseOptions & { prompt_dropout: number };
  checkpoint_every: number;
  sample: { prompts: string[]; per_prompt: number; steps: number; guidance_scale: number };
  eval_timesteps: number[];
  compile: CompileMode;
}

export interface Parts {
  dataset: SegDataset;
  tagger: Tagger;
  textEncoder: PromptEncoder;
  vae: LatentAutoencoder;
  unet: ConditionalUNet;
}

/** What a checkpoint's `extra` records: where the two-phase schedule stands. */
interface Progress {
  phase: 'vae' | 'unet' | 'done';
  step: number;
  scalingFactor: number | null;
}

type Named = Record<string, tf.Variable>;

function namedParams(b: Backbone, prefix: string): Named {
  const out: Named = {};
  for (const [k, p] of b.store.params) out[`${prefix}${k}`] = p.variable;
  return out;
}

/** AdamW over `vars` (names without the checkpoint prefix) with warmup + cosine decay to lr x min_lr_ratio. */
function optimizerFor(vars: Named, o: PhaseOptions): Optimizer {
  return new Optimizer(vars, {
    type: 'adamw',
    lr: o.lr,
    weight_decay: o.weight_decay,
    schedule: { type: 'cosine', max_steps: o.steps, min_lr: o.lr * o.min_lr_ratio, warmup: { iters: o.warmup, ratio: 0.01 } },
  });
}

const yieldToEvents = () => new Promise((r) => setImmediate(r));

/**
 * The two phases: (1) the VAE on clean images (L1/MSE reconstruction of a posterior sample +
 * kl_weight x KL, LDM's weighting), (2) the UNet as an epsilon-prediction latent diffusion
 * model on the frozen VAE's latents x scaling factor (1/std of the training latents, as SD
 * measured its own), conditioned through the frozen text encoder on each image's tags joined
 * by ", " (dropped to "" with prob prompt_dropout, which also trains the unconditional
 * prediction classifier-free guidance uses). Then held-out evaluation, a DDIM sample grid and
 * the diffusers-layout export under artifacts/model/.
 */
export async function pretrain(o: PretrainOptions, p: Parts, rc: RunContext): Promise<Record<string, number>> {
  const started = Date.now();
  const { dataset: ds, tagger, textEncoder, vae, unet } = p;
  const nTrain = ds.length - o.holdout;
  if (nTrain < Math.max(o.vae_phase.batch_size, o.unet_phase.batch_size)) {
    throw new UserError(`experiment.holdout: the dataset has ${ds.length} samples; after holding out ${o.holdout} fewer than one batch remain for training`);
  }
  rc.log.info(`decoding ${ds.length} ${ds.type} samples (${nTrain} train, ${o.holdout} held out)`);
  const train = await loadImageSet(ds, tagger, 0, nTrain, 'experiment.dataset');
  const held = await loadImageSet(ds, tagger, nTrain, ds.length, 'experiment.dataset');
  if (held.height !== train.height || held.width !== train.width) throw new UserError('experiment.dataset: held-out images differ in size from the training images');

  const vaeVars = namedParams(vae, '');
  const unetVars = namedParams(unet, '');
  const allVars: Named = { ...namedParams(vae, 'vae.'), ...namedParams(unet, 'unet.') };
  let state: Progress = { phase: 'vae', step: 0, scalingFactor: null };
  let loaded: LoadedCheckpoint | undefined;
  if (rc.resume?.checkpointDir) {
    const dir = join(rc.resume.checkpointDir, 'ckpt');
    loaded = loadCheckpoint(dir);
    const ck = loaded;
    restoreWeights(allVars, ck.weights, dir);
    state = loaded.extra as Progress;
    rc.log.info(`resuming at ${state.phase} step ${state.step}`);
  } else {
    if (o.vae_phase.init === 'zero-residual') zeroResidualBranches(vaeVars);
    rc.logParams({
      data: { dataset: ds.type, train: nTrain, holdout: o.holdout, height: train.height, width: train.width },
      model: { vae_params: count(vae), unet_params: count(unet), text_encoder_params: count(textEncoder), text_encoder: 'frozen' },
    });
  }
  const save = (s: Progress, opt?: Optimizer) =>
    rc.saveCheckpoint(stepCheckpointName(s.step, s.phase), (dir) => {
      saveCheckpoint(join(dir, 'ckpt'), { weights: allVars, ...(opt ? { optimizer: opt.getState() } : {}), extra: s });
    });
  const vo = o.vae_phase;
  if (vo.crop > Math.min(train.height, train.width)) throw new UserError(`experiment.vae_phase.crop: ${vo.crop} exceeds the ${train.height}x${train.width} images`);
  const uo = o.unet_phase;
  const ac = alphasCumprod();
  const final: Record<string, number> = {};

  // ---- phase 1: the VAE ----
  if (state.phase === 'vae') {
    const opt = optimizerFor(vaeVars, vo);
    if (loaded?.optimizer && state.step > 0) opt.setState(loaded.optimizer);
    const order = new DataOrder(rc.seed, 'vae', nTrain, vo.batch_size);
    const pixels = (vo.crop || train.height) * (vo.crop || train.width) * 3;
    const cropH = vo.crop || train.height;
    const cropW = vo.crop || train.width;
    const latentShape = tf.tidy(() => vae.runEncode(tf.zeros([1, cropH, cropW, 3]) as tf.Tensor4D).mean.shape.slice(1)) as [number, number, number];
    const latentPerImage = latentShape[0] * latentShape[1] * latentShape[2];
    const vaeStep = new TrainStep(vaeVars, opt, vo.max_grad_norm, ({ x, noise }) => {
      const xi = x as tf.Tensor4D;
      const { mean, logvar } = vae.runEncode(xi);
      const lv = tf.clipByValue(logvar, -30, 20); // as diffusers' DiagonalGaussianDistribution
      const z = tf.add(mean, tf.mul(tf.exp(tf.mul(lv, 0.5)), noise as tf.Tensor)) as tf.Tensor4D;
      const y = vae.runDecode(z);
      const l1 = tf.mean(tf.abs(tf.sub(y, xi))) as tf.Scalar;
      const mse = tf.mean(tf.square(tf.sub(y, xi))) as tf.Scalar;
      // KL(q(z|x) || N(0, I)) summed over latent elements, averaged over the batch (LDM), per image element
      const kl = tf.div(tf.mul(0.5, tf.sum(tf.sub(tf.add(tf.square(mean), tf.exp(lv)), tf.add(lv, 1)))), xi.shape[0] * pixels) as tf.Scalar;
      const loss = tf.addN([tf.mul(l1, vo.l1_weight), tf.mul(mse, vo.mse_weight), tf.mul(kl, vo.kl_weight)]) as tf.Scalar;
      return { loss, terms: { l1, mse, kl } };
    }, { mode: o.compile, name: 'pretrain-vae', log: (l) => rc.log.info(l) });
    const bar = rc.progress('vae', vo.steps);
    if (state.step) bar.update(state.step);
    let step = state.step;
    while (step < vo.steps) {
      if (rc.signal.aborted) {
        await save({ phase: 'vae', step, scalingFactor: null }, opt);
        bar.done('stopped');
        vaeStep.dispose();
        opt.dispose();
        return {};
      }
      const idx = order.indices(step);
      const rng = Rng.derive(rc.seed, 'pretrain-ldm', 'vae', 'noise', step);
      const crop = vo.crop > 0 ? { size: vo.crop, offsets: idx.map(() => [rng.int(0, train.height - vo.crop), rng.int(0, train.width - vo.crop)] as [number, number]) } : undefined;
      const x = imageBatch(train, idx, crop);
      // the posterior sample's noise is drawn here, not in the step: a compiled step would freeze a seed
      const noise = tf.tensor4d(rng.fillNormal(new Float32Array(idx.length * latentPerImage)) as Float32Array, [idx.length, ...latentShape]);
      const lr = opt.lrFor();
      const r = vaeStep.run({ x, noise });
      tf.dispose(noise);
      x.dispose();
      step++;
      rc.logMetrics(step, { 'vae/loss': r.loss, 'vae/l1': r.terms.l1 as number, 'vae/mse': r.terms.mse as number, 'vae/kl': r.terms.kl as number, 'vae/grad_norm': r.gradNorm, 'vae/lr': lr });
      bar.tick(1, `l1 ${(r.terms.l1 as number).toFixed(4)}`);
      // progress on the quantity that matters (reconstruction of unseen images), not only the training loss
      if (vo.eval_every > 0 && step % vo.eval_every === 0 && step < vo.steps) {
        const p = vaeHeldOut(vae, held).psnr;
        rc.logMetrics(step, { 'vae/psnr_heldout': p });
        rc.log.info(`VAE step ${step}: held-out reconstruction PSNR ${p.toFixed(2)} dB`);
      }
      if (step % o.checkpoint_every === 0 && step < vo.steps) await save({ phase: 'vae', step, scalingFactor: null }, opt);
      await yieldToEvents();
    }
    bar.done();
    rc.setTags(vaeStep.tags());
    vaeStep.dispose();
    opt.dispose();
    state = { phase: 'unet', step: 0, scalingFactor: null };
  }

  // ---- between the phases: latents of the training set, the scaling factor, VAE quality ----
  rc.log.info('encoding the training set with the trained VAE');
  const latents = encodeAll(vae, train);
  const scalingFactor = state.scalingFactor ?? 1 / std(latents.mean);
  const vaeHeld = vaeHeldOut(vae, held);
  final['vae/psnr_heldout'] = vaeHeld.psnr;
  final['vae/scaling_factor'] = scalingFactor;
  rc.logMetrics(vo.steps, { 'vae/psnr_heldout': vaeHeld.psnr, 'vae/scaling_factor': scalingFactor });
  rc.log.info(`VAE: held-out reconstruction PSNR ${vaeHeld.psnr.toFixed(2)} dB; latent scaling factor ${scalingFactor.toFixed(4)}`);
  if (state.phase === 'unet' && state.step === 0 && state.scalingFactor === null) {
    state = { phase: 'unet', step: 0, scalingFactor };
    await save(state);
  }

  // ---- phase 2: the UNet (VAE and text encoder frozen) ----
  const prompts = new PromptCache(textEncoder);
  const [lh, lw, lc] = latents.shape;
  const latentSize = lh * lw * lc;
  const unetLosses: number[] = [];
  try {
    if (state.phase === 'unet') {
      const opt = optimizerFor(unetVars, uo);
      if (loaded?.optimizer && state.step > 0) opt.setState(loaded.optimizer);
      const order = new DataOrder(rc.seed, 'unet', nTrain, uo.batch_size);
      const unetStep = new TrainStep(unetVars, opt, uo.max_grad_norm, ({ zt, t, ctx, eps }) => ({ loss: tf.mean(tf.square(tf.sub(unet.run(zt as tf.Tensor4D, t as tf.Tensor1D, ctx as tf.Tensor3D), eps as tf.Tensor))) as tf.Scalar }), {
        mode: o.compile,
        name: 'pretrain-unet',
        log: (l) => rc.log.info(l),
      });
      const bar = rc.progress('unet', uo.steps);
      if (state.step) bar.update(state.step);
      let step = state.step;
      while (step < uo.steps) {
        if (rc.signal.aborted) {
          await save({ phase: 'unet', step, scalingFactor }, opt);
          bar.done('stopped');
          unetStep.dispose();
          opt.dispose();
          return {};
        }
        const idx = order.indices(step);
        const rng = Rng.derive(rc.seed, 'pretrain-ldm', 'unet', 'noise', step);
        const b = idx.length;
        const zt = new Float32Array(b * latentSize);
        const eps = rng.fillNormal(new Float32Array(b * latentSize)) as Float32Array;
        const post = rng.fillNormal(new Float32Array(b * latentSize)) as Float32Array;
        const ts = new Int32Array(b);
        const texts: string[] = [];
        idx.forEach((k, i) => {
          const t = rng.int(0, ac.length - 1);
          ts[i] = t;
          const sa = Math.sqrt(ac[t] as number);
          const sb = Math.sqrt(1 - (ac[t] as number));
          for (let j = 0; j < latentSize; j++) {
            const src = k * latentSize + j;
            // a posterior sample of the cached encoding, scaled into the diffusion's latent space
            const z0 = ((latents.mean[src] as number) + Math.exp(0.5 * (latents.logvar[src] as number)) * (post[i * latentSize + j] as number)) * scalingFactor;
            zt[i * latentSize + j] = sa * z0 + sb * (eps[i * latentSize + j] as number);
          }
          texts.push(rng.bernoulli(uo.prompt_dropout) ? '' : (train.tags[k] as string[]).join(', '));
        });
        const ztT = tf.tensor4d(zt, [b, lh, lw, lc]);
        const epsT = tf.tensor4d(eps, [b, lh, lw, lc]);
        const tT = tf.tensor1d(ts, 'int32');
        const ctx = prompts.batch(texts);
        const lr = opt.lrFor();
        const r = unetStep.run({ zt: ztT, t: tT, ctx, eps: epsT });
        tf.dispose([ztT, epsT, tT, ctx]);
        step++;
        unetLosses.push(r.loss);
        rc.logMetrics(vo.steps + step, { 'unet/loss': r.loss, 'unet/grad_norm': r.gradNorm, 'unet/lr': lr });
        bar.tick(1, `loss ${r.loss.toFixed(4)}`);
        if (step % o.checkpoint_every === 0 && step < uo.steps) await save({ phase: 'unet', step, scalingFactor }, opt);
        await yieldToEvents();
      }
      bar.done();
      rc.setTags(unetStep.tags());
      unetStep.dispose();
      opt.dispose();
      await save({ phase: 'done', step: uo.steps, scalingFactor });
    }
    const lastSteps = vo.steps + uo.steps;

    // ---- evaluation: does the text condition help the denoiser on held-out images? ----
    const ev = evalEps(unet, vae, prompts, held, scalingFactor, ac, o.eval_timesteps, rc.seed);
    Object.assign(final, { 'eval/eps_mse_cond': ev.cond, 'eval/eps_mse_uncond': ev.uncond });
    if (unetLosses.length) final['unet/loss_last100'] = mean(unetLosses.slice(-100));
    rc.log.info(`held-out epsilon MSE: ${ev.cond.toFixed(4)} with the tag prompt, ${ev.uncond.toFixed(4)} with the empty prompt`);

    // ---- artifacts: DDIM samples, VAE reconstructions, the diffusers folder, provenance ----
    const grid = sampleGrid(unet, vae, prompts, o.sample, scalingFactor, ac, [lh, lw, lc], train.height, train.width, rc.seed);
    const recon = tileGrid([held.images.slice(0, 8), vaeHeld.recon.slice(0, 8)], held.height, held.width);
    const exportDir = join(rc.runDir, '.export-model');
    rmSync(exportDir, { recursive: true, force: true });
    mkdirSync(exportDir, { recursive: true });
    const index: Record<string, unknown> = {
      _class_name: 'StableDiffusionPipeline',
      _diffusers_version: '0.31.0',
      feature_extractor: [null, null],
      requires_safety_checker: false,
      safety_checker: [null, null],
      scheduler: ['diffusers', 'DDIMScheduler'],
    };
    const components: [Backbone, string, Record<string, unknown>][] = [
      [textEncoder, 'experiment.text_encoder', {}],
      [vae, 'experiment.vae', { scaling_factor: scalingFactor, sample_size: train.height }],
      [unet, 'experiment.unet', { sample_size: lh }],
    ];
    for (const [b, where, config] of components) {
      if (!b.savePretrained) throw new UserError(`${where}: backbone ${b.type} cannot save itself in the diffusers layout (no savePretrained)`);
      Object.assign(index, b.savePretrained(exportDir, { config }));
    }
    writeFileSync(join(exportDir, 'model_index.json'), JSON.stringify(sortKeys(index), null, 2) + '\n');
    mkdirSync(join(exportDir, 'scheduler'), { recursive: true });
    writeFileSync(join(exportDir, 'scheduler', 'scheduler_config.json'), JSON.stringify(SCHEDULER_CONFIG, null, 2) + '\n');
    writeFileSync(join(exportDir, 'ddim_samples.png'), encodePng(grid.rgb, grid.width, grid.height));
    writeFileSync(join(exportDir, 'vae_reconstructions.png'), encodePng(recon.rgb, recon.width, recon.height));
    const wall = (Date.now() - started) / 1000;
    final.wall_time_s = wall;
    const provenance = {
      produced_by: 'experiment/pretrain-ldm',
      run_id: rc.runId,
      config_sha256: sha256File(join(rc.runDir, 'config.yaml')),
      seed: rc.seed,
      ...gitState(),
      backend: tf.getBackend(),
      wall_time_s: Math.round(wall),
      resumed: Boolean(rc.resume?.checkpointDir),
      steps: { vae: vo.steps, unet: uo.steps },
      data: { dataset: ds.type, train: nTrain, holdout: o.holdout, height: train.height, width: train.width },
      text_encoder: 'random init, frozen (tags condition the UNet through its fixed embeddings)',
      final: Object.fromEntries(Object.entries(final).map(([k, v]) => [k, Number(v.toPrecision(6))])),
      ddim_samples: { rows: o.sample.prompts.map((q) => q || '(empty prompt)'), per_prompt: o.sample.per_prompt, steps: o.sample.steps, guidance_scale: o.sample.guidance_scale, eta: 0 },
      vae_reconstructions: 'top row: held-out images; bottom row: VAE reconstructions (posterior mean)',
    };
    writeFileSync(join(exportDir, 'provenance.json'), JSON.stringify(provenance, null, 2) + '\n');
    for (const f of listFiles(exportDir)) await rc.logArtifact(`model/${relative(exportDir, f)}`, readFileSync(f));
    rmSync(exportDir, { recursive: true, force: true });
    rc.logMetrics(lastSteps, final);
    return final;
  } finally {
    prompts.dispose();
  }
}

/** diffusers' DDIMScheduler config with SD 2.1-base's settings (the schedule `noise-schedule.ts` implements). */
const SCHEDULER_CONFIG = {
  _class_name: 'DDIMScheduler',
  _diffusers_version: '0.31.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  set_alpha_to_one: false,
  steps_offset: 1,
  timestep_spacing: 'leading',
};

function count(b: Backbone): number {
  let n = 0;
  for (const p of b.store.params.values()) n += p.variable.size;
  return n;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

function std(x: Float32Array): number {
  let s = 0;
  let s2 = 0;
  for (const v of x) {
    s += v;
    s2 += v * v;
  }
  const m = s / x.length;
  return Math.sqrt(Math.max(s2 / x.length - m * m, 1e-12));
}

/** Posterior means/logvars of every training image (VAE frozen from here on), batched. */
/** Residual branches' last layers (ResnetBlock2D conv2, attention to_out.0) set to zero: every block starts as its shortcut. */
const RESIDUAL_OUT = /(resnets\.\d+\.conv2|attentions\.\d+\.to_out\.0)\.(weight|bias)$/;
export function zeroResidualBranches(vars: Named): string[] {
  const names = Object.keys(vars).filter((k) => RESIDUAL_OUT.test(k));
  for (const k of names) tf.tidy(() => (vars[k] as tf.Variable).assign(tf.zerosLike(vars[k] as tf.Variable)));
  return names;
}

function encodeAll(vae: LatentAutoencoder, set: ImageSet, batch = 32): { mean: Float32Array; logvar: Float32Array; shape: [number, number, number] } {
  const parts: { m: Float32Array; l: Float32Array }[] = [];
  let shape: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < set.images.length; i += batch) {
    const idx = Array.from({ length: Math.min(batch, set.images.length - i) }, (_, j) => i + j);
    const [m, l] = tf.tidy(() => {
      const r = vae.runEncode(imageBatch(set, idx));
      return [r.mean, tf.clipByValue(r.logvar, -30, 20)];
    });
    shape = m.shape.slice(1) as [number, number, number];
    parts.push({ m: m.dataSync() as Float32Array, l: l.dataSync() as Float32Array });
    tf.dispose([m, l]);
  }
  const cat = (k: 'm' | 'l') => {
    const out = new Float32Array(parts.reduce((a, p) => a + p[k].length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p[k], off);
      off += p[k].length;
    }
    return out;
  };
  return { mean: cat('m'), logvar: cat('l'), shape };
}

/** Reconstruction (decode of the posterior mean) PSNR on the held-out images, and the reconstructions. */
function vaeHeldOut(vae: LatentAutoencoder, held: ImageSet): { psnr: number; recon: Uint8Array[] } {
  const idx = held.images.map((_, i) => i);
  const x = imageBatch(held, idx);
  const y = tf.tidy(() => tf.clipByValue(vae.runDecode(vae.runEncode(x).mean), -1, 1) as tf.Tensor4D);
  const out = { psnr: psnr(y, x), recon: toUint8Images(y) };
  tf.dispose([x, y]);
  return out;
}

/** Text contexts by prompt, encoded once each by the frozen text encoder. */
class PromptCache {
  private readonly cache = new Map<string, tf.Tensor3D>();
  constructor(private readonly enc: PromptEncoder) {}
  get(text: string): tf.Tensor3D {
    let c = this.cache.get(text);
    if (!c) {
      c = this.enc.encodeText([text]);
      this.cache.set(text, c);
    }
    return c;
  }
  /** [texts.length, tokens, dim] (a new tensor the caller disposes). */
  batch(texts: readonly string[]): tf.Tensor3D {
    const parts = texts.map((t) => this.get(t));
    return tf.concat(parts, 0);
  }
  dispose(): void {
    tf.dispose([...this.cache.values()]);
    this.cache.clear();
  }
}

/**
 * Mean epsilon-prediction MSE on the held-out images at fixed timesteps and fixed noise, with
 * each image's tag prompt and with the empty prompt: the conditioning is useful when the first
 * is lower.
 */
function evalEps(unet: ConditionalUNet, vae: LatentAutoencoder, prompts: PromptCache, held: ImageSet, sf: number, ac: Float64Array, timesteps: number[], seed: number): { cond: number; uncond: number } {
  const idx = held.images.map((_, i) => i);
  const x = imageBatch(held, idx);
  const z0 = tf.tidy(() => tf.mul(vae.runEncode(x).mean, sf) as tf.Tensor4D);
  const condCtx = prompts.batch(held.tags.map((t) => t.join(', ')));
  const uncondCtx = prompts.batch(held.tags.map(() => ''));
  let cond = 0;
  let uncond = 0;
  timesteps.forEach((t, i) => {
    const [c, u] = tf.tidy(() => {
      const eps = tf.randomNormal(z0.shape, 0, 1, 'float32', Rng.derive(seed, 'pretrain-ldm', 'eval', i).int(0, 2 ** 31 - 1));
      const zt = tf.add(tf.mul(z0, Math.sqrt(ac[t] as number)), tf.mul(eps, Math.sqrt(1 - (ac[t] as number)))) as tf.Tensor4D;
      const err = (ctx: tf.Tensor3D) => tf.mean(tf.square(tf.sub(unet.run(zt, t, ctx), eps))).dataSync()[0] as number;
      return [err(condCtx), err(uncondCtx)];
    });
    cond += c / timesteps.length;
    uncond += u / timesteps.length;
  });
  tf.dispose([x, z0, condCtx, uncondCtx]);
  return { cond, uncond };
}

/** One row per prompt, `per_prompt` DDIM samples each, from seeded initial noise. */
function sampleGrid(
  unet: ConditionalUNet,
  vae: LatentAutoencoder,
  prompts: PromptCache,
  o: PretrainOptions['sample'],
  sf: number,
  ac: Float64Array,
  latentShape: [number, number, number],
  h: number,
  w: number,
  seed: number,
): { rgb: Uint8Array; width: number; height: number } {
  const rows: Uint8Array[][] = [];
  o.prompts.forEach((text, r) => {
    const n = o.per_prompt;
    const noise = tf.tensor4d(Rng.derive(seed, 'pretrain-ldm', 'ddim', r).fillNormal(new Float32Array(n * latentShape[0] * latentShape[1] * latentShape[2])) as Float32Array, [n, ...latentShape]);
    const z = ddimSample(unet, noise, prompts.get(text), o.guidance_scale !== 1 ? prompts.get('') : null, ac, { steps: o.steps, guidanceScale: o.guidance_scale });
    const img = decodeLatents(vae, z, sf);
    if (img.shape[1] !== h || img.shape[2] !== w) throw new Error(`decoded samples are ${img.shape[1]}x${img.shape[2]}, expected ${h}x${w}`);
    rows.push(toUint8Images(img));
    tf.dispose([noise, z, img]);
  });
  return tileGrid(rows, h, w);
}

function sha256File(path: string): string | null {
  return existsSync(path) ? createHash('sha256').update(readFileSync(path)).digest('hex') : null;
}

/** The commit the run's code came from (null outside a git checkout). */
function gitState(): { git_commit: string | null; git_dirty: boolean | null } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { timeout: 3000, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { timeout: 3000, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
    return { git_commit: commit, git_dirty: dirty };
  } catch {
    return { git_commit: null, git_dirty: null };
  }
}

function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => (statSync(join(dir, n)).isDirectory() ? listFiles(join(dir, n)) : [join(dir, n)]));
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}
