/**
 * The public API plugin packages use. External packages receive this object when their
 * default export is a function, so they need no second copy of the framework.
 * Add here only what a plugin author needs; everything else stays internal.
 */
import * as publicApi from './api.js';
import { provideHostApi } from './plugins/host-api.js';

// external packages loaded through `plugins:` receive this module (plugins/ cannot import it)
provideHostApi(publicApi);

export { definePlugin } from './plugins/define-plugin.js';
export type { Plugin, AnyPlugin, PluginOutput } from './plugins/define-plugin.js';
export { pluginPackage } from './plugins/plugin-package.js';
export type { PluginPackage } from './plugins/plugin-package.js';
export type { PluginContext, ComponentNode, Logger } from './plugins/context.js';
export { isComponentNode, consoleLogger } from './plugins/context.js';
export { PLUGIN_KINDS } from './plugins/kinds.js';
export type { PluginKind } from './plugins/kinds.js';
export type { CommandSpec, CliContext } from './plugins/command-spec.js';
export { UserError } from './errors.js';
export { ensureWritableDir } from './tracking/ensure-dir.js';
export { componentSchema } from './plugins/schema-helpers.js';
// engine pieces plugins need (seeded init, weight files) and the backbone/adapter contracts
export { Rng } from './engine/rng.js';
export { roundHalfEven } from './engine/round-half-even.js';
export { readSafetensors, toFloat32, writeSafetensors } from './engine/safetensors.js';
export type { SafetensorsEntry, WritableTensor } from './engine/safetensors.js';
export type { Backbone, ParameterHolder, TargetableLayer, LayerDelta } from './contracts/backbone.js';
export type { Adapter } from './contracts/adapter.js';
export type { SegDataset, SegSample } from './contracts/dataset.js';
export type { Tagger } from './contracts/tagger.js';
export type { SegHead, HeadOutput, MaskPrediction, FeatureLevel } from './contracts/head.js';
export type { SegLoss, PreparedSegLoss, SegTargets, LossResult, ImageLoss, AttentionLoss, AttentionSample, AttentionTarget, AttentionShapes, PreparedAttentionTargets } from './contracts/loss.js';
export type { TapOptions, TapResult, ConditionalUNet, LatentAutoencoder, PromptEncoder, OneStepRestorer } from './contracts/backbone.js';
export type { Degradation, DegradationContext } from './contracts/degradation.js';
export type { Experiment, RunContext, ProgressHandle } from './contracts/experiment.js';
// the host's tfjs, so external plugin packages compute with the same engine (no second copy)
export * as tf from '@tensorflow/tfjs-core';
export type { Metric, MetricBatch, MetricResult, MetricTable, MetricImage, LabelMap, PerSampleRecord } from './contracts/metric.js';
export { loadConfig, validateConfig, buildComponent, buildNode, ConfigError, formatOrigin } from './config/index.js';
export type { ResolvedConfig, LoadOptions } from './config/index.js';
export { PluginRegistry } from './plugins/registry.js';
// what a plugin package's own command needs to behave like \`rass run\` (rass degrade uses them)
export { initBackend, parseBackendName, hostThreads } from './engine/backend.js';
export { SyncWorker, serveSync, sharedHelper, helperFailed, helperResult, helperState } from './engine/sync-worker.js';
export { loadConfigPlugins } from './runner/run-config.js';
export { Optimizer, clipByGlobalNorm, clipByGlobalNormTensor, clipCoefficient } from './engine/optim.js';
export { compileStep, CompiledStep, hostPlan, nativeCompileSupport, pickScalars, scalarInputs } from './engine/compile.js';
export type { CompileMode, CompileStepOptions, CompileStatus, Planner } from './engine/compile.js';
export type { OptimizerOptions, OptimizerState, ParamGroup } from './engine/optim.js';
export { lrAt, warmupFactor } from './engine/schedules.js';
export type { ScheduleSpec } from './engine/schedules.js';
export { saveCheckpoint, loadCheckpoint, restoreWeights } from './engine/checkpoint.js';
export type { CheckpointContents, LoadedCheckpoint } from './engine/checkpoint.js';
export { encodePng } from './image/png.js';
export { finishedRun } from './tracking/run-reference.js';
// memory-lean building blocks for models: chunked attention with a recomputing gradient,
// composite ops with hand-written gradients, activation checkpointing
export { memoryEfficientAttention, plainAttention, attentionChunkSize } from './engine/attention.js';
export type { AttentionOptions } from './engine/attention.js';
export { gelu, geglu, silu, groupNorm, layerNorm } from './engine/fused-ops.js';
export { recomputed } from './engine/recompute.js';
export { customOp, type CustomOpResult } from './engine/custom-op.js';
export { nativeOpsEnabled, nativeOpWithGrad } from './engine/native-ops.js';
