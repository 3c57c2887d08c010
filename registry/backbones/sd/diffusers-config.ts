import { UserError } from '../../../framework/api.js';

/**
 * Every `__init__` parameter of diffusers 0.42's `UNet2DConditionModel` and `AutoencoderKL`,
 * each with diffusers' default and what this project does with it. A config.json is checked
 * against the table key by key, so a key this project does not honour is refused by name
 * (with its value) instead of being silently ignored, and a key diffusers adds in a later
 * version is refused too until someone looks at it. docs/diffusers-configs.md is the
 * human-readable form of these tables (a test keeps the two and diffusers' signature in step).
 */
export type KeyStatus =
  /** honoured for every value diffusers accepts (or refused with a reason for the values it is not) */
  | 'implemented'
  /** recorded in the config only (sizes for pipelines, fp16 hints): no effect on an fp32 forward */
  | 'metadata'
  /** only diffusers' default value is accepted */
  | 'default-only';

export interface KeyRule {
  status: KeyStatus;
  /** diffusers' default (what a missing key means) */
  default: unknown;
  /** why: for default-only keys, what a non-default value would need; for the others, a note */
  note: string;
}

const ACTIVATIONS = ['silu', 'swish', 'gelu', 'relu', 'mish'];

export const UNET_KEYS: Readonly<Record<string, KeyRule>> = {
  sample_size: { status: 'metadata', default: null, note: 'the training resolution; any input size runs' },
  in_channels: { status: 'implemented', default: 4, note: '' },
  out_channels: { status: 'implemented', default: 4, note: '' },
  center_input_sample: { status: 'implemented', default: false, note: 'input mapped to 2x-1 before conv_in' },
  flip_sin_to_cos: { status: 'implemented', default: true, note: '' },
  freq_shift: { status: 'implemented', default: 0, note: '' },
  down_block_types: {
    status: 'implemented',
    default: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    note: 'CrossAttnDownBlock2D, DownBlock2D (and their UNetRes-prefixed aliases); other block types are refused by index',
  },
  mid_block_type: { status: 'implemented', default: 'UNetMidBlock2DCrossAttn', note: 'UNetMidBlock2DCrossAttn, UNetMidBlock2D, null; UNetMidBlock2DSimpleCrossAttn is refused' },
  up_block_types: {
    status: 'implemented',
    default: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    note: 'CrossAttnUpBlock2D, UpBlock2D (and UNetRes aliases); other block types are refused by index',
  },
  only_cross_attention: { status: 'implemented', default: false, note: 'bool or per down block list (up blocks reversed)' },
  block_out_channels: { status: 'implemented', default: [320, 640, 1280, 1280], note: '' },
  layers_per_block: { status: 'implemented', default: 2, note: 'int or per down block list' },
  downsample_padding: { status: 'implemented', default: 1, note: '1, or 0 (pad right/bottom by one, then an unpadded conv); other values refused' },
  mid_block_scale_factor: { status: 'implemented', default: 1, note: "the mid block's ResNet output scale" },
  dropout: { status: 'default-only', default: 0, note: 'dropout is not implemented (a non-zero value would change training)' },
  act_fn: { status: 'implemented', default: 'silu', note: ACTIVATIONS.join(', ') },
  norm_num_groups: { status: 'implemented', default: 32, note: 'must divide every block width; null (no output norm) refused' },
  norm_eps: { status: 'implemented', default: 1e-5, note: '' },
  cross_attention_dim: { status: 'implemented', default: 1280, note: 'int or per down block list' },
  transformer_layers_per_block: { status: 'implemented', default: 1, note: 'int, per down block list, or per block list of per layer lists' },
  reverse_transformer_layers_per_block: { status: 'implemented', default: null, note: 'per up block list (of ints or per layer lists)' },
  encoder_hid_dim: { status: 'implemented', default: null, note: 'with encoder_hid_dim_type text_proj (or null, which diffusers turns into text_proj)' },
  encoder_hid_dim_type: { status: 'implemented', default: null, note: 'text_proj; text_image_proj/image_proj/ip_image_proj need image embeddings (refused)' },
  attention_head_dim: { status: 'implemented', default: 8, note: "the number of heads per block (diffusers' historical naming): int or per down block list" },
  num_attention_heads: { status: 'default-only', default: null, note: 'diffusers 0.42 itself raises for a non-null value' },
  dual_cross_attention: { status: 'default-only', default: false, note: 'DualTransformer2DModel is not implemented' },
  use_linear_projection: { status: 'implemented', default: false, note: '' },
  class_embed_type: { status: 'default-only', default: null, note: 'class embeddings need class labels in the forward, which the backbone contract has no input for' },
  addition_embed_type: { status: 'default-only', default: null, note: 'additional (text/text_time/image) embeddings need added_cond_kwargs (SDXL-style); not implemented' },
  addition_time_embed_dim: { status: 'default-only', default: null, note: 'only used by addition_embed_type text_time (refused)' },
  num_class_embeds: { status: 'default-only', default: null, note: 'class embeddings (refused, see class_embed_type)' },
  upcast_attention: { status: 'implemented', default: false, note: 'attention is computed in fp32 always, which is what upcasting does' },
  resnet_time_scale_shift: { status: 'implemented', default: 'default', note: 'default, scale_shift; ada_group/spatial refused' },
  resnet_skip_time_act: {
    status: 'implemented',
    default: false,
    note: 'diffusers passes it only to SimpleCrossAttn/ResnetDownsample blocks (refused), so it has no effect on the supported ones',
  },
  resnet_out_scale_factor: {
    status: 'implemented',
    default: 1.0,
    note: 'diffusers passes it only to SimpleCrossAttn/ResnetDownsample blocks (refused), so it has no effect on the supported ones',
  },
  time_embedding_type: { status: 'default-only', default: 'positional', note: 'fourier (GaussianFourierProjection) is not implemented' },
  time_embedding_dim: { status: 'implemented', default: null, note: 'width of the time embedding (default 4 x block_out_channels[0])' },
  time_embedding_act_fn: { status: 'implemented', default: null, note: `null or ${ACTIVATIONS.join(', ')}` },
  timestep_post_act: { status: 'implemented', default: null, note: `null or ${ACTIVATIONS.join(', ')}` },
  time_cond_proj_dim: { status: 'default-only', default: null, note: 'needs a timestep_cond input (LCM-style); not implemented' },
  conv_in_kernel: { status: 'implemented', default: 3, note: 'odd sizes' },
  conv_out_kernel: { status: 'implemented', default: 3, note: 'odd sizes' },
  projection_class_embeddings_input_dim: { status: 'default-only', default: null, note: 'only used by class/addition embeddings (refused)' },
  attention_type: { status: 'default-only', default: 'default', note: 'gated (GLIGEN) attention is not implemented' },
  class_embeddings_concat: { status: 'default-only', default: false, note: 'class embeddings (refused); without them diffusers itself fails at the first ResNet' },
  mid_block_only_cross_attention: {
    status: 'implemented',
    default: null,
    note: 'diffusers uses it only for UNetMidBlock2DSimpleCrossAttn (refused), so it has no effect on the supported mid blocks',
  },
  cross_attention_norm: {
    status: 'implemented',
    default: null,
    note: 'diffusers passes it only to SimpleCrossAttn blocks (refused), so it has no effect on the supported ones',
  },
  addition_embed_type_num_heads: { status: 'default-only', default: 64, note: 'only used by addition_embed_type text (refused)' },
};

export const VAE_KEYS: Readonly<Record<string, KeyRule>> = {
  in_channels: { status: 'implemented', default: 3, note: '' },
  out_channels: { status: 'implemented', default: 3, note: '' },
  down_block_types: { status: 'implemented', default: ['DownEncoderBlock2D'], note: 'DownEncoderBlock2D only (other types refused by index)' },
  up_block_types: { status: 'implemented', default: ['UpDecoderBlock2D'], note: 'UpDecoderBlock2D only (other types refused by index)' },
  block_out_channels: { status: 'implemented', default: [64], note: '' },
  layers_per_block: { status: 'implemented', default: 1, note: 'int' },
  act_fn: { status: 'implemented', default: 'silu', note: `${ACTIVATIONS.join(', ')} (the ResNets; the output activation is SiLU in diffusers whatever act_fn says)` },
  latent_channels: { status: 'implemented', default: 4, note: '' },
  norm_num_groups: { status: 'implemented', default: 32, note: 'must divide every block width' },
  sample_size: { status: 'metadata', default: 32, note: 'the training resolution; any input size runs' },
  scaling_factor: { status: 'implemented', default: 0.18215, note: 'the latent scale the one-step pipeline and pretraining use' },
  shift_factor: { status: 'default-only', default: null, note: 'the latent scaling here is scale-only; a shift would be silently dropped' },
  latents_mean: { status: 'default-only', default: null, note: 'per-channel latent normalisation is not applied by this project' },
  latents_std: { status: 'default-only', default: null, note: 'per-channel latent normalisation is not applied by this project' },
  force_upcast: { status: 'metadata', default: true, note: 'an fp16 hint; this project runs the VAE in fp32' },
  use_quant_conv: { status: 'implemented', default: true, note: '' },
  use_post_quant_conv: { status: 'implemented', default: true, note: '' },
  mid_block_add_attention: { status: 'implemented', default: true, note: '' },
};

/** Keys diffusers writes into config.json that are not constructor arguments. */
const BOOKKEEPING = /^_/;

export type Raw = Record<string, unknown>;

const show = (v: unknown): string => JSON.stringify(v) ?? String(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isPosInt = (v: unknown): v is number => isInt(v) && v > 0;
const sameValue = (a: unknown, b: unknown): boolean => show(a) === show(b);

/** Collects every problem of one config, then throws one UserError naming each key and value. */
class Problems {
  readonly list: string[] = [];
  constructor(readonly where: string) {}
  add(key: string, value: unknown, why: string): void {
    this.list.push(`${key} = ${show(value)}: ${why}`);
  }
  throwIfAny(kind: string): void {
    if (this.list.length) {
      throw new UserError(`${this.where}: ${kind} config is not supported by this project:\n  ${this.list.join('\n  ')}\n(see docs/diffusers-configs.md)`);
    }
  }
}

/** The raw config with diffusers' default for every missing key; unknown keys and default-only keys are checked here. */
function withDefaults(raw: Raw, table: Readonly<Record<string, KeyRule>>, p: Problems): Raw {
  const out: Raw = {};
  for (const [k, v] of Object.entries(raw)) {
    if (BOOKKEEPING.test(k)) continue;
    const rule = table[k];
    if (!rule) p.add(k, v, 'unknown key (not a constructor argument of the diffusers 0.42 class); refused rather than ignored');
    else if (rule.status === 'default-only' && !sameValue(v, rule.default)) p.add(k, v, `only ${show(rule.default)} is supported: ${rule.note}`);
  }
  for (const [k, rule] of Object.entries(table)) out[k] = k in raw ? raw[k] : rule.default;
  return out;
}

/** A per down block value: an int repeated, or a list with one entry per block. */
function perBlock(p: Problems, key: string, v: unknown, n: number, ok: (x: unknown) => boolean, what: string): number[] {
  if (!Array.isArray(v)) {
    if (!ok(v)) p.add(key, v, `must be ${what} or a list of them`);
    return new Array<number>(n).fill(v as number);
  }
  if (v.length !== n) p.add(key, v, `has ${v.length} entries but there are ${n} down blocks`);
  if (!v.every(ok)) p.add(key, v, `every entry must be ${what}`);
  return Array.from({ length: n }, (_, i) => v[i] as number);
}

function activationName(p: Problems, key: string, v: unknown, nullable: boolean): string | null {
  if (v === null && nullable) return null;
  if (typeof v === 'string' && ACTIVATIONS.includes(v)) return v;
  p.add(key, v, `supported: ${nullable ? 'null, ' : ''}${ACTIVATIONS.join(', ')}`);
  return 'silu';
}

function positiveIntList(p: Problems, key: string, v: unknown): number[] {
  if (!Array.isArray(v) || !v.length || !v.every(isPosInt)) {
    p.add(key, v, 'must be a non-empty list of positive integers');
    return [8];
  }
  return v;
}

/** Transformer depth of each layer of a block: an int for every layer, or a list with one per layer. */
function layerDepths(p: Problems, key: string, v: unknown, layers: number): number[] {
  if (isPosInt(v)) return new Array<number>(layers).fill(v);
  if (Array.isArray(v) && v.length === layers && v.every(isPosInt)) return v;
  p.add(key, v, `each entry must be a positive integer or a list of ${layers} (one per layer of that block)`);
  return new Array<number>(layers).fill(1);
}

export interface UNetDownSpec {
  type: 'cross' | 'plain';
  layers: number;
  heads: number;
  crossDim: number;
  onlyCross: boolean;
  depths: number[];
}

/** A `UNet2DConditionModel` config with every list expanded per block and every value checked. */
export interface ResolvedUNetConfig {
  inChannels: number;
  outChannels: number;
  centerInput: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  channels: number[];
  down: UNetDownSpec[];
  /** up blocks in order (deepest first), each with its own layer count (down layers + 1) */
  up: UNetDownSpec[];
  mid: { type: 'cross'; heads: number; crossDim: number; depth: number } | { type: 'plain' } | null;
  downsamplePadding: 0 | 1;
  midScale: number;
  act: string;
  groups: number;
  eps: number;
  linearProjection: boolean;
  scaleShift: boolean;
  timeDim: number;
  timeAct: string | null;
  timePostAct: string | null;
  convInKernel: number;
  convOutKernel: number;
  /** encoder_hid_proj: [encoder_hid_dim, cross_attention_dim] */
  encoderHidProj: [number, number] | null;
}

const blockKind = (t: unknown, cross: string, plain: string): 'cross' | 'plain' | null => {
  const name = typeof t === 'string' && t.startsWith('UNetRes') ? t.slice(7) : t;
  return name === cross ? 'cross' : name === plain ? 'plain' : null;
};

/**
 * Check a `UNet2DConditionModel` config.json against UNET_KEYS and expand it. `where` names the
 * file (or the option) in the error.
 */
export function resolveUNetConfig(raw: Raw, where: string): ResolvedUNetConfig {
  const p = new Problems(where);
  const c = withDefaults(raw, UNET_KEYS, p);
  for (const k of ['in_channels', 'out_channels'] as const) if (!isPosInt(c[k])) p.add(k, c[k], 'must be a positive integer');
  const channels = positiveIntList(p, 'block_out_channels', c.block_out_channels);
  const n = channels.length;
  const downTypes = Array.isArray(c.down_block_types) ? (c.down_block_types as unknown[]) : [];
  const upTypes = Array.isArray(c.up_block_types) ? (c.up_block_types as unknown[]) : [];
  if (downTypes.length !== n) p.add('down_block_types', c.down_block_types, `must list ${n} block types (one per block_out_channels entry)`);
  if (upTypes.length !== n) p.add('up_block_types', c.up_block_types, `must list ${n} block types (one per block_out_channels entry)`);
  const groups = c.norm_num_groups;
  if (!isPosInt(groups)) p.add('norm_num_groups', groups, 'must be a positive integer (null, no output norm, is not supported)');
  else for (const ch of channels) if (ch % groups) p.add('norm_num_groups', groups, `does not divide block width ${ch}`);
  if (typeof c.norm_eps !== 'number' || !(c.norm_eps > 0)) p.add('norm_eps', c.norm_eps, 'must be a positive number');

  const heads = perBlock(p, 'attention_head_dim', c.attention_head_dim, n, isPosInt, 'a positive integer');
  const crossDims = perBlock(p, 'cross_attention_dim', c.cross_attention_dim, n, isPosInt, 'a positive integer');
  const layers = perBlock(p, 'layers_per_block', c.layers_per_block, n, isPosInt, 'a positive integer');
  const onlyCross = Array.isArray(c.only_cross_attention)
    ? (perBlock(p, 'only_cross_attention', c.only_cross_attention, n, (x) => typeof x === 'boolean', 'a boolean') as unknown as boolean[])
    : typeof c.only_cross_attention === 'boolean'
      ? new Array<boolean>(n).fill(c.only_cross_attention)
      : (p.add('only_cross_attention', c.only_cross_attention, 'must be a boolean or a list of them'), new Array<boolean>(n).fill(false));
  for (let i = 0; i < n; i++) if (isPosInt(heads[i]) && heads[i] > channels[i]) p.add('attention_head_dim', c.attention_head_dim, `block ${i} has ${channels[i]} channels, fewer than ${heads[i]} heads`);

  // transformer depths: per down block (int or per-layer list); up blocks reversed unless given
  const tl = c.transformer_layers_per_block;
  const tlList: unknown[] = isPosInt(tl) ? new Array<unknown>(n).fill(tl) : Array.isArray(tl) ? tl : [];
  if (!isPosInt(tl) && !(Array.isArray(tl) && tl.length === n)) p.add('transformer_layers_per_block', tl, `must be a positive integer or a list of ${n} (one per down block)`);
  const nested = tlList.some(Array.isArray);
  const rtl = c.reverse_transformer_layers_per_block;
  if (nested && rtl === null) p.add('transformer_layers_per_block', tl, 'per-layer lists need reverse_transformer_layers_per_block (diffusers raises the same)');
  if (rtl !== null && !(Array.isArray(rtl) && rtl.length === n)) p.add('reverse_transformer_layers_per_block', rtl, `must be null or a list of ${n} (one per up block)`);

  const down: UNetDownSpec[] = [];
  const up: UNetDownSpec[] = [];
  for (let i = 0; i < n; i++) {
    const kind = blockKind(downTypes[i], 'CrossAttnDownBlock2D', 'DownBlock2D');
    if (i < downTypes.length && !kind) p.add(`down_block_types[${i}]`, downTypes[i], 'supported: CrossAttnDownBlock2D, DownBlock2D');
    down.push({ type: kind ?? 'plain', layers: layers[i], heads: heads[i], crossDim: crossDims[i], onlyCross: onlyCross[i], depths: layerDepths(p, 'transformer_layers_per_block', tlList[i] ?? 1, layers[i]) });
  }
  for (let i = 0; i < n; i++) {
    const j = n - 1 - i;
    const kind = blockKind(upTypes[i], 'CrossAttnUpBlock2D', 'UpBlock2D');
    if (i < upTypes.length && !kind) p.add(`up_block_types[${i}]`, upTypes[i], 'supported: CrossAttnUpBlock2D, UpBlock2D');
    const depthSpec = Array.isArray(rtl) ? rtl[i] : tlList[j];
    up.push({ type: kind ?? 'plain', layers: layers[j] + 1, heads: heads[j], crossDim: crossDims[j], onlyCross: onlyCross[j], depths: layerDepths(p, Array.isArray(rtl) ? 'reverse_transformer_layers_per_block' : 'transformer_layers_per_block', depthSpec ?? 1, layers[j] + 1) });
  }

  let mid: ResolvedUNetConfig['mid'] = null;
  if (c.mid_block_type === 'UNetMidBlock2DCrossAttn') {
    const last = tlList[n - 1];
    // diffusers' mid block has one layer: a per-layer list contributes its first entry
    const depth = Array.isArray(last) ? (last[0] as number) : ((last ?? 1) as number);
    mid = { type: 'cross', heads: heads[n - 1], crossDim: crossDims[n - 1], depth };
  } else if (c.mid_block_type === 'UNetMidBlock2D') mid = { type: 'plain' };
  else if (c.mid_block_type !== null) p.add('mid_block_type', c.mid_block_type, 'supported: UNetMidBlock2DCrossAttn, UNetMidBlock2D, null');
  if (c.mid_block_only_cross_attention !== null && typeof c.mid_block_only_cross_attention !== 'boolean') p.add('mid_block_only_cross_attention', c.mid_block_only_cross_attention, 'must be null or a boolean');

  if (c.downsample_padding !== 0 && c.downsample_padding !== 1) p.add('downsample_padding', c.downsample_padding, 'supported: 0, 1');
  for (const k of ['mid_block_scale_factor', 'resnet_out_scale_factor', 'freq_shift'] as const) if (typeof c[k] !== 'number' || !Number.isFinite(c[k])) p.add(k, c[k], 'must be a number');
  if (c.mid_block_scale_factor === 0) p.add('mid_block_scale_factor', 0, 'must not be 0 (the ResNet output is divided by it)');
  for (const k of ['center_input_sample', 'flip_sin_to_cos', 'use_linear_projection', 'upcast_attention', 'resnet_skip_time_act'] as const) {
    if (typeof c[k] !== 'boolean') p.add(k, c[k], 'must be a boolean');
  }
  if (c.cross_attention_norm !== null && c.cross_attention_norm !== 'group_norm' && c.cross_attention_norm !== 'layer_norm') p.add('cross_attention_norm', c.cross_attention_norm, 'must be null, group_norm or layer_norm');
  if (c.resnet_time_scale_shift !== 'default' && c.resnet_time_scale_shift !== 'scale_shift') p.add('resnet_time_scale_shift', c.resnet_time_scale_shift, 'supported: default, scale_shift (ada_group/spatial are not implemented)');
  const act = activationName(p, 'act_fn', c.act_fn, false) as string;
  const timeAct = activationName(p, 'time_embedding_act_fn', c.time_embedding_act_fn, true);
  const timePostAct = activationName(p, 'timestep_post_act', c.timestep_post_act, true);
  const timeDim = c.time_embedding_dim === null ? channels[0] * 4 : (c.time_embedding_dim as number);
  if (c.time_embedding_dim !== null && !isPosInt(c.time_embedding_dim)) p.add('time_embedding_dim', c.time_embedding_dim, 'must be null or a positive integer');
  for (const k of ['conv_in_kernel', 'conv_out_kernel'] as const) if (!isPosInt(c[k]) || c[k] % 2 !== 1) p.add(k, c[k], 'supported: odd positive integers (an even kernel changes the spatial size)');

  let encoderHidProj: [number, number] | null = null;
  const hidType = c.encoder_hid_dim_type ?? (c.encoder_hid_dim !== null ? 'text_proj' : null);
  if (hidType !== null) {
    if (hidType !== 'text_proj') p.add('encoder_hid_dim_type', c.encoder_hid_dim_type, 'supported: null, text_proj (the image projections need image embeddings in the forward)');
    else if (!isPosInt(c.encoder_hid_dim)) p.add('encoder_hid_dim', c.encoder_hid_dim, 'encoder_hid_dim_type text_proj needs a positive integer encoder_hid_dim');
    else if (!isPosInt(c.cross_attention_dim)) p.add('cross_attention_dim', c.cross_attention_dim, 'must be one integer when encoder_hid_dim projects the context');
    else encoderHidProj = [c.encoder_hid_dim, c.cross_attention_dim];
  }
  p.throwIfAny('UNet2DConditionModel');
  return {
    inChannels: c.in_channels as number,
    outChannels: c.out_channels as number,
    centerInput: c.center_input_sample as boolean,
    flipSinToCos: c.flip_sin_to_cos as boolean,
    freqShift: c.freq_shift as number,
    channels,
    down,
    up,
    mid,
    downsamplePadding: c.downsample_padding as 0 | 1,
    midScale: c.mid_block_scale_factor as number,
    act,
    groups: groups as number,
    eps: c.norm_eps as number,
    linearProjection: c.use_linear_projection as boolean,
    scaleShift: c.resnet_time_scale_shift === 'scale_shift',
    timeDim,
    timeAct,
    timePostAct,
    convInKernel: c.conv_in_kernel as number,
    convOutKernel: c.conv_out_kernel as number,
    encoderHidProj,
  };
}

export interface ResolvedVaeConfig {
  inChannels: number;
  outChannels: number;
  channels: number[];
  layers: number;
  act: string;
  latentChannels: number;
  groups: number;
  scalingFactor: number;
  quantConv: boolean;
  postQuantConv: boolean;
  midAttention: boolean;
}

/** Check an `AutoencoderKL` config.json against VAE_KEYS. */
export function resolveVaeConfig(raw: Raw, where: string): ResolvedVaeConfig {
  const p = new Problems(where);
  const c = withDefaults(raw, VAE_KEYS, p);
  for (const k of ['in_channels', 'out_channels', 'latent_channels', 'layers_per_block'] as const) if (!isPosInt(c[k])) p.add(k, c[k], 'must be a positive integer');
  const channels = positiveIntList(p, 'block_out_channels', c.block_out_channels);
  for (const [key, ok] of [['down_block_types', 'DownEncoderBlock2D'], ['up_block_types', 'UpDecoderBlock2D']] as const) {
    const types = c[key];
    if (!Array.isArray(types) || types.length !== channels.length) p.add(key, types, `must list ${channels.length} block types (one per block_out_channels entry)`);
    else types.forEach((t, i) => t !== ok && p.add(`${key}[${i}]`, t, `supported: ${ok}`));
  }
  const groups = c.norm_num_groups;
  if (!isPosInt(groups)) p.add('norm_num_groups', groups, 'must be a positive integer');
  else for (const ch of channels) if (ch % groups) p.add('norm_num_groups', groups, `does not divide block width ${ch}`);
  const act = activationName(p, 'act_fn', c.act_fn, false) as string;
  if (typeof c.scaling_factor !== 'number' || !(c.scaling_factor > 0)) p.add('scaling_factor', c.scaling_factor, 'must be a positive number');
  for (const k of ['use_quant_conv', 'use_post_quant_conv', 'mid_block_add_attention', 'force_upcast'] as const) if (typeof c[k] !== 'boolean') p.add(k, c[k], 'must be a boolean');
  p.throwIfAny('AutoencoderKL');
  return {
    inChannels: c.in_channels as number,
    outChannels: c.out_channels as number,
    channels,
    layers: c.layers_per_block as number,
    act,
    latentChannels: c.latent_channels as number,
    groups: groups as number,
    scalingFactor: c.scaling_factor as number,
    quantConv: c.use_quant_conv as boolean,
    postQuantConv: c.use_post_quant_conv as boolean,
    midAttention: c.mid_block_add_attention as boolean,
  };
}
