import type * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { definePlugin, finishedRun, UserError, type Logger } from '../../../framework/api.js';
import type { Adapter } from '../../../framework/api.js';
import type { ParameterHolder } from '../../../framework/api.js';
import { LoraModel, type LoraConfig } from './lora.js';

/** The `adapter/lora` component: one named LoRA adapter (new or loaded from a PEFT folder) on a backbone. */
export class LoraAdapter implements Adapter {
  readonly type = 'lora';
  model: LoraModel | null = null;
  constructor(
    readonly name: string,
    readonly config: LoraConfig,
    private readonly seed: number,
    private readonly log: Logger,
    private readonly where: string,
    private readonly loadFrom: string | null,
  ) {}

  /** Install on `target`; pass an existing LoraModel to keep several named adapters on one backbone. */
  attach(target: ParameterHolder, shared?: LoraModel): void {
    if (this.model) throw new UserError(`${this.where}: adapter "${this.name}" is already attached`);
    const model = shared ?? new LoraModel(target, this.seed);
    if (this.loadFrom) model.load(this.loadFrom, this.name);
    else model.add(this.name, this.config, this.where);
    this.model = model;
    const { trainable, total } = model.counts();
    const layers = model.adapters.get(this.name)?.layers.size ?? 0;
    this.log.info(
      `${this.where}: LoRA "${this.name}" on ${layers} layers: trainable ${trainable.toLocaleString('en-US')} / total ${total.toLocaleString('en-US')} parameters (${((100 * trainable) / total).toFixed(3)}%)`,
    );
  }

  trainableVariables(): tf.Variable[] {
    return this.model ? this.model.trainableVariables(this.name) : [];
  }

  namedVariables(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = {};
    const a = this.attached().adapters.get(this.name);
    for (const [path, l] of a?.layers ?? []) {
      out[`${this.name}.${path}.lora_A`] = l.A;
      out[`${this.name}.${path}.lora_B`] = l.B;
      if (l.bias) out[`${this.name}.${path}.lora_B.bias`] = l.bias;
    }
    for (const [param, s] of a?.saved ?? []) out[`${this.name}.${param}`] = s.variable;
    return out;
  }

  setTraining(on: boolean): void {
    for (const l of this.attached().adapters.get(this.name)?.layers.values() ?? []) l.training = on;
  }

  save(dir: string, opts?: { modulesToSave?: readonly string[] }): void {
    this.attached().save(dir, this.name, opts);
  }

  /** Fold this adapter into the base weights and drop it; other adapters on the backbone stay. */
  mergeAndUnload(): void {
    this.attached().mergeAndUnloadOne(this.name);
    this.model = null;
  }

  private attached(): LoraModel {
    if (!this.model) throw new UserError(`${this.where}: adapter "${this.name}" is not attached to a backbone`);
    return this.model;
  }

  dispose(): void {
    if (this.model?.adapters.has(this.name)) this.model.remove(this.name);
    this.model = null;
  }
}

export const loraPlugin = definePlugin({
  kind: 'adapter',
  name: 'lora',
  description: 'PEFT-compatible LoRA (target/exclude modules, rank/alpha patterns, layers_to_transform, lora_bias, modules_to_save; PEFT file format)',
  docs: `Wraps the Linear/Conv2d modules of a backbone selected by \`target_modules\` (PEFT rules; an entry
that selects nothing is an error). Update: (alpha / r) * B(A(dropout(x))); for convs A has the base
kernel/stride/padding and B is 1x1. Several named adapters can share a backbone (LoraModel:
setEnabled, merge, unmerge, mergeAndUnload). Files: adapter_config.json + adapter_model.safetensors
with keys \`base_model.model.<module>.lora_A.weight\` / \`lora_B.weight\`, loadable by peft.
PEFT options exclude_modules, modules_to_save (whole modules saved with the adapter, keys
\`base_model.model.<module>.<param>\`), layers_to_transform/layers_pattern, rank_pattern/alpha_pattern
and lora_bias behave as in peft 0.21; use_dora, bias != none, fan_in_fan_out and the data-driven inits
are refused by name when loading (docs/peft-adapters.md lists every field).
Trainable and total parameter counts are logged when the adapter is attached.`,
  schema: {
    type: 'object',
    properties: {
      name: { type: 'string', default: 'default', description: 'Adapter name (several named adapters can share a backbone).' },
      r: { type: 'integer', minimum: 1, default: 4, description: 'Rank.' },
      alpha: { type: 'number', default: 4, description: 'Scale numerator: the update is (alpha / r) B A x.' },
      dropout: { type: 'number', minimum: 0, maximum: 1, default: 0, description: 'Dropout on the LoRA input during training.' },
      target_modules: {
        oneOf: [{ type: 'array', items: { type: 'string' }, minItems: 1 }, { type: 'string' }],
        default: ['to_q', 'to_k', 'to_v', 'to_out.0'],
        description: "As PEFT: a list matches module names equal to or ending in '.<entry>'; a string is a full-match regex.",
      },
      init: { enum: ['gaussian', 'kaiming'], default: 'gaussian', description: 'A init: gaussian N(0, 1/r) (OSEDiff, PEFT "gaussian") or kaiming-uniform (PEFT default).' },
      init_b: { enum: ['zero', 'gaussian'], default: 'zero', description: 'B init; zero makes a fresh adapter a no-op (PEFT).' },
      use_rslora: { type: 'boolean', default: false, description: 'Scale alpha / sqrt(r) instead of alpha / r.' },
      exclude_modules: {
        oneOf: [{ type: 'array', items: { type: 'string' } }, { type: 'string' }],
        description: 'As PEFT: modules never wrapped (list: equal name or dotted suffix; string: full-match regex).',
      },
      modules_to_save: { type: 'array', items: { type: 'string' }, description: 'As PEFT: modules (names ending in an entry) trained whole and saved with the adapter.' },
      layers_to_transform: {
        oneOf: [{ type: 'integer', minimum: 0 }, { type: 'array', items: { type: 'integer', minimum: 0 } }],
        description: 'As PEFT: with a target list, wrap only modules whose layer index (the number after layers_pattern) is listed.',
      },
      layers_pattern: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }], description: 'As PEFT: the name before the layer index (e.g. down_blocks).' },
      rank_pattern: { type: 'object', additionalProperties: { type: 'integer', minimum: 1 }, description: 'As PEFT: per-module rank, keyed by a regex matching a dotted suffix of the module name.' },
      alpha_pattern: { type: 'object', additionalProperties: { type: 'number' }, description: 'As PEFT: per-module alpha, keyed like rank_pattern.' },
      lora_bias: { type: 'boolean', default: false, description: 'As PEFT: B has a bias (merging needs a base bias).' },
      load: { type: 'string', description: 'Load weights and config from a PEFT adapter folder (adapter_config.json + adapter_model.safetensors).' },
      from_run: { type: 'string', description: 'Load the adapter `name` a finished run saved (its artifacts/adapters/<name>/): a run id, id prefix, directory, or latest:NAME (the newest finished run of that name).' },
    },
    additionalProperties: false,
  } as const,
  create(opts, ctx) {
    const config: LoraConfig = {
      r: opts.r,
      alpha: opts.alpha,
      dropout: opts.dropout,
      targetModules: opts.target_modules as string[] | string,
      init: opts.init,
      initB: opts.init_b,
      useRslora: opts.use_rslora,
      excludeModules: opts.exclude_modules as string[] | string | undefined,
      modulesToSave: opts.modules_to_save,
      layersToTransform: opts.layers_to_transform as number | number[] | undefined,
      layersPattern: opts.layers_pattern as string | string[] | undefined,
      rankPattern: opts.rank_pattern as Record<string, number> | undefined,
      alphaPattern: opts.alpha_pattern as Record<string, number> | undefined,
      loraBias: opts.lora_bias,
    };
    if (opts.load && opts.from_run) throw new UserError(`${ctx.path}: give load or from_run, not both`);
    let from: string | null = opts.load ? ctx.resolvePath(opts.load) : null;
    if (opts.from_run) {
      const runsDir = (ctx.services.runsDir as string | undefined) ?? ctx.resolvePath('runs');
      const cwd = (ctx.services.cwd as string | undefined) ?? process.cwd();
      from = join(finishedRun(opts.from_run, { runsDir, cwd, where: `${ctx.path}.from_run`, artifacts: [`adapters/${opts.name}/adapter_config.json`] }).artifactsDir, 'adapters', opts.name);
    }
    return new LoraAdapter(opts.name, config, ctx.seed, ctx.log, ctx.path, from);
  },
});
