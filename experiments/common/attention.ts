import { UserError, type AttentionSample, type PromptEncoder, type SegSample, type Tagger, tf } from '../../framework/api.js';

/**
 * The prompt of each sample and the attention targets the Semantic-Constraint Loss reads:
 * for every tag, its token positions in the prompt and its class mask. Tags whose class is
 * unknown (no mask), or whose class has no pixel in this image, or whose tokens were cut off
 * by the prompt length, are unmatched: left out of SCL and counted.
 */
export function promptsAndTargets(
  samples: readonly SegSample[],
  tagger: Tagger,
  text: PromptEncoder,
  classNames: readonly string[],
  ignoreIndex: number,
): { prompts: string[]; targets: AttentionSample[] } {
  const prompts: string[] = [];
  const targets: AttentionSample[] = [];
  for (const s of samples) {
    const tags = tagger.tagsFor(s, classNames, ignoreIndex);
    const { prompt, spans } = text.promptTokens(tags);
    prompts.push(prompt);
    const matched: { tag: string; tokens: number[]; mask: Uint8Array }[] = [];
    const unmatched: string[] = [];
    tags.forEach((tag, i) => {
      const mask = s.label ? tagger.maskForTag(tag, s.label, classNames) : null;
      const tokens = spans[i] ?? [];
      if (!mask || tokens.length === 0 || !mask.some((v) => v !== 0)) unmatched.push(tag);
      else matched.push({ tag, tokens, mask });
    });
    targets.push({ height: s.height, width: s.width, targets: matched, unmatched });
  }
  return { prompts, targets };
}

/** (h, w) of an attention map with `nq` image tokens over an image of aspect height/width. */
export function mapGrid(nq: number, height: number, width: number): [number, number] {
  const h = Math.round(Math.sqrt((nq * height) / width));
  const w = Math.round(nq / h);
  if (h * w !== nq) throw new RangeError(`an attention map of ${nq} tokens does not tile a ${width}x${height} image`);
  return [h, w];
}

/** Area-average a binary HW mask to (h, w): each cell gets the fraction of its footprint inside the mask. */
export function areaResize(mask: Uint8Array, H: number, W: number, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  const sy = H / h;
  const sx = W / w;
  for (let y = 0; y < h; y++) {
    const y0 = y * sy;
    const y1 = (y + 1) * sy;
    for (let x = 0; x < w; x++) {
      const x0 = x * sx;
      const x1 = (x + 1) * sx;
      let acc = 0;
      for (let Y = Math.floor(y0); Y < Math.ceil(y1); Y++) {
        const wy = Math.min(y1, Y + 1) - Math.max(y0, Y);
        for (let X = Math.floor(x0); X < Math.ceil(x1); X++) {
          const wx = Math.min(x1, X + 1) - Math.max(x0, X);
          if (mask[Y * W + X]) acc += wy * wx;
        }
      }
      out[y * w + x] = acc / (sy * sx);
    }
  }
  return out;
}

/**
 * Attention-mask agreement, the quantity SCL should raise: for each matched tag and each
 * captured layer, the share of the tag's attention (mean over its tokens, over image tokens)
 * that falls inside its mask (area-resized to the map). Returns the sum and count, so
 * batches accumulate into one mean.
 */
export function attentionAgreement(attention: ReadonlyMap<string, tf.Tensor>, samples: readonly AttentionSample[]): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const map of attention.values()) {
    const [b, nq, nk] = map.shape as [number, number, number];
    const v = map.dataSync() as Float32Array;
    for (let i = 0; i < b; i++) {
      const s = samples[i];
      if (!s || s.targets.length === 0) continue;
      const [h, w] = mapGrid(nq, s.height, s.width);
      for (const t of s.targets) {
        const m = areaResize(t.mask, s.height, s.width, h, w);
        let inside = 0;
        let total = 0;
        for (let q = 0; q < nq; q++) {
          let a = 0;
          for (const k of t.tokens) a += v[(i * nq + q) * nk + k] as number;
          total += a;
          inside += a * (m[q] as number);
        }
        if (total > 0) {
          sum += inside / total;
          count++;
        }
      }
    }
  }
  return { sum, count };
}

/** Before training: a tagger that can check its coverage (a tags file) checks every sample of the dataset. */
export function checkTaggerCovers(tagger: Tagger, dataset: { sampleIds?(): readonly { id: string; file?: string }[] }, where: string): void {
  if (!tagger.checkSamples || !dataset.sampleIds) return;
  try {
    tagger.checkSamples(dataset.sampleIds());
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${where}: ${e.message}`, { cause: e });
    throw e;
  }
}
