import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { tf, readSafetensors, restoreWeights, toFloat32, UserError, type ComponentNode } from '../../framework/api.js';
import type { Adapter, OneStepRestorer, SegHead } from '../../framework/api.js';
import { FeatureProjector } from './features.js';

/** Predicted label maps: argmax of the head's semantic scores at the input size (one tidy, nothing kept). */
export function predictLabels(backbone: OneStepRestorer, head: SegHead, projector: FeatureProjector, features: readonly string[], input: tf.Tensor4D, context: tf.Tensor3D, height: number, width: number): Uint8Array[] {
  const labels = tf.tidy(() => {
    const feats = backbone.features(input, context, features);
    const out = head.forward(projector.levels(feats), { training: false });
    const r = tf.argMax(head.semantic(out, height, width), 3);
    tf.dispose([...feats.values()]);
    return r;
  });
  const v = labels.dataSync() as Int32Array;
  labels.dispose();
  const size = height * width;
  return Array.from({ length: input.shape[0] }, (_, i) => Uint8Array.from(v.subarray(i * size, (i + 1) * size)));
}

/** What a RASS (or diffusion seg-baseline) run saves under artifacts/model/model.json. */
export interface SegmenterMeta {
  features: string[];
  projection_dim: number;
  head_strides: number[];
  num_classes: number;
  scr_merged: boolean;
  seg_adapter: string;
  taps: { name: string; channels: number; stride: number }[];
}

/** A trained segmenter rebuilt from its run: backbone (+ SCR adapter as trained), Seg adapter, projections, head. */
export class LoadedSegmenter {
  constructor(
    readonly backbone: OneStepRestorer,
    readonly head: SegHead,
    readonly projector: FeatureProjector,
    readonly meta: SegmenterMeta,
    private readonly adapters: Adapter[],
  ) {}

  predict(input: tf.Tensor4D, context: tf.Tensor3D, height: number, width: number): Uint8Array[] {
    return predictLabels(this.backbone, this.head, this.projector, this.meta.features, input, context, height, width);
  }

  dispose(): void {
    for (const a of this.adapters) a.dispose();
    this.projector.dispose();
    this.head.dispose();
    this.backbone.dispose();
  }
}

type Build = <T>(node: ComponentNode, opts: { expectKind: 'backbone' | 'adapter' | 'head'; path: string }) => Promise<T>;

/**
 * Rebuild the segmenter a finished RASS run trained: its recorded config gives the backbone,
 * SCR adapter and head nodes; artifacts/model holds the Seg adapter (PEFT), the projections,
 * the head and the backbone parameters it trained (conv_in).
 */
export async function loadSegmenter(runDir: string, build: Build, where: string): Promise<LoadedSegmenter> {
  const modelDir = join(runDir, 'artifacts', 'model');
  let meta: SegmenterMeta;
  let e: { backbone: ComponentNode; scr_adapter?: ComponentNode; merge_scr: boolean; head: ComponentNode };
  try {
    meta = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8')) as SegmenterMeta;
    e = (parse(readFileSync(join(runDir, 'config.yaml'), 'utf8')) as { experiment: typeof e }).experiment;
  } catch (err) {
    throw new UserError(`${where}: ${runDir} is not a run with a saved segmenter (artifacts/model/model.json and config.yaml): ${(err as Error).message}`);
  }
  const owned: { dispose(): void }[] = [];
  try {
    const backbone = await build<OneStepRestorer>(e.backbone, { expectKind: 'backbone', path: `${where} (backbone of ${runDir})` });
    owned.push(backbone);
    const adapters: Adapter[] = [];
    if (e.scr_adapter) {
      const scr = await build<Adapter>(e.scr_adapter, { expectKind: 'adapter', path: `${where} (SCR adapter of ${runDir})` });
      scr.attach(backbone.unet.store);
      if (e.merge_scr) scr.mergeAndUnload();
      else adapters.push(scr);
    }
    const seg = await build<Adapter>({ type: 'adapter/lora', name: meta.seg_adapter.replace(/^adapter_/, ''), load: join(modelDir, meta.seg_adapter) }, { expectKind: 'adapter', path: `${where} (Seg adapter of ${runDir})` });
    seg.attach(backbone.unet.store);
    adapters.push(seg);
    owned.push(...adapters);
    const head = await build<SegHead>(e.head, { expectKind: 'head', path: `${where} (head of ${runDir})` });
    owned.push(head);
    const projector = new FeatureProjector(meta.taps, meta.projection_dim, head.inStrides, 0, where);
    owned.push(projector);
    const vars: Record<string, tf.Variable> = { ...projector.vars };
    for (const [k, v] of head.params) vars[`head.${k}`] = v;
    const file = readSafetensors(join(modelDir, 'weights.safetensors'));
    const loaded: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [k, t] of file.tensors) {
      if (k.startsWith('unet.')) {
        const p = backbone.unet.store.params.get(k.slice(5));
        if (!p) throw new UserError(`${where}: ${join(modelDir, 'weights.safetensors')} holds ${k}, which the backbone does not have`);
        vars[k] = p.variable;
      }
      loaded[k] = { shape: t.shape, data: toFloat32(t) };
    }
    restoreWeights(vars, loaded, join(modelDir, 'weights.safetensors'));
    return new LoadedSegmenter(backbone, head, projector, meta, adapters);
  } catch (err) {
    for (const o of owned.reverse()) o.dispose();
    throw err;
  }
}
