import type { Rng } from '../../../framework/api.js';

/** A sample under augmentation: HWC RGB image, optional HW label. */
export interface AugSample {
  image: Uint8Array;
  label?: Uint8Array;
  height: number;
  width: number;
}

export interface AugmentOptions {
  /** MMSegmentation RandomResize: base (width, height) scale, keep ratio, times a ratio drawn from ratioRange. */
  scale?: [number, number];
  ratioRange?: [number, number];
  /** RandomCrop (height, width); images smaller than the crop are padded (image 0, label ignore). */
  crop?: [number, number];
  /** RandomCrop retries until no class covers more than this fraction of the labelled crop (MMSeg cat_max_ratio). */
  catMaxRatio?: number;
  flipProb?: number;
  /** PhotoMetricDistortion (brightness +-32, contrast/saturation x[0.5,1.5], hue +-18 deg, each with p=0.5). */
  photometric?: boolean;
  ignoreIndex?: number;
}

/** Bilinear resize of HWC uint8 (half-pixel centres, like cv2/PIL bilinear without antialias). */
export function resizeBilinear(src: Uint8Array, h: number, w: number, c: number, oh: number, ow: number): Uint8Array {
  const out = new Uint8Array(oh * ow * c);
  const sy = h / oh;
  const sx = w / ow;
  for (let y = 0; y < oh; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const wy = fy - y0;
    for (let x = 0; x < ow; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, w - 1);
      const wx = fx - x0;
      for (let k = 0; k < c; k++) {
        const a = src[(y0 * w + x0) * c + k] * (1 - wx) + src[(y0 * w + x1) * c + k] * wx;
        const b = src[(y1 * w + x0) * c + k] * (1 - wx) + src[(y1 * w + x1) * c + k] * wx;
        out[(y * ow + x) * c + k] = Math.round(a * (1 - wy) + b * wy);
      }
    }
  }
  return out;
}

/** Nearest-neighbour resize of an HW label map (labels must never be interpolated). */
export function resizeNearest(src: Uint8Array, h: number, w: number, oh: number, ow: number): Uint8Array {
  const out = new Uint8Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / oh));
    for (let x = 0; x < ow; x++) out[y * ow + x] = src[sy * w + Math.min(w - 1, Math.floor(((x + 0.5) * w) / ow))];
  }
  return out;
}

export function resize(s: AugSample, oh: number, ow: number): AugSample {
  if (oh === s.height && ow === s.width) return s;
  return {
    image: resizeBilinear(s.image, s.height, s.width, 3, oh, ow),
    label: s.label && resizeNearest(s.label, s.height, s.width, oh, ow),
    height: oh,
    width: ow,
  };
}

/** Rescale keeping the aspect ratio so the long side fits max(scale) and the short side min(scale) (mmcv rescale_size). */
export function randomResize(s: AugSample, rng: Rng, scale: [number, number], ratioRange: [number, number]): AugSample {
  const r = rng.uniform(ratioRange[0], ratioRange[1]);
  const long = Math.max(scale[0], scale[1]) * r;
  const short = Math.min(scale[0], scale[1]) * r;
  const f = Math.min(long / Math.max(s.height, s.width), short / Math.min(s.height, s.width));
  return resize(s, Math.max(1, Math.round(s.height * f)), Math.max(1, Math.round(s.width * f)));
}

function cropAt(s: AugSample, y0: number, x0: number, ch: number, cw: number): AugSample {
  const image = new Uint8Array(ch * cw * 3);
  const label = s.label ? new Uint8Array(ch * cw) : undefined;
  for (let y = 0; y < ch; y++) {
    image.set(s.image.subarray(((y0 + y) * s.width + x0) * 3, ((y0 + y) * s.width + x0 + cw) * 3), y * cw * 3);
    if (label && s.label) label.set(s.label.subarray((y0 + y) * s.width + x0, (y0 + y) * s.width + x0 + cw), y * cw);
  }
  return { image, label, height: ch, width: cw };
}

/** Largest single-class fraction of the labelled pixels and the number of classes present. */
function classStats(label: Uint8Array, ignore: number): { maxRatio: number; classes: number } {
  const counts = new Uint32Array(256);
  for (let i = 0; i < label.length; i++) counts[label[i]]++;
  counts[ignore] = 0;
  let total = 0;
  let max = 0;
  let classes = 0;
  for (const c of counts) {
    total += c;
    if (c > 0) classes++;
    if (c > max) max = c;
  }
  return { maxRatio: total ? max / total : 1, classes };
}

/**
 * MMSegmentation RandomCrop: up to 10 draws until the crop has more than one class and none
 * covers `catMaxRatio` or more of it; otherwise the last draw is kept.
 */
export function randomCrop(s: AugSample, rng: Rng, ch: number, cw: number, catMaxRatio: number, ignore: number): AugSample {
  const h = Math.min(ch, s.height);
  const w = Math.min(cw, s.width);
  let box = [rng.int(0, s.height - h), rng.int(0, s.width - w)];
  if (s.label && catMaxRatio < 1) {
    for (let t = 0; t < 10; t++) {
      const c = cropAt({ image: new Uint8Array(0), label: s.label, height: s.height, width: s.width }, box[0], box[1], h, w);
      const st = classStats(c.label as Uint8Array, ignore);
      if (st.classes > 1 && st.maxRatio < catMaxRatio) break;
      box = [rng.int(0, s.height - h), rng.int(0, s.width - w)];
    }
  }
  return cropAt(s, box[0], box[1], h, w);
}

export function pad(s: AugSample, ph: number, pw: number, ignore: number): AugSample {
  if (s.height >= ph && s.width >= pw) return s;
  const H = Math.max(ph, s.height);
  const W = Math.max(pw, s.width);
  const image = new Uint8Array(H * W * 3);
  const label = s.label ? new Uint8Array(H * W).fill(ignore) : undefined;
  for (let y = 0; y < s.height; y++) {
    image.set(s.image.subarray(y * s.width * 3, (y + 1) * s.width * 3), y * W * 3);
    if (label && s.label) label.set(s.label.subarray(y * s.width, (y + 1) * s.width), y * W);
  }
  return { image, label, height: H, width: W };
}

export function flipHorizontal(s: AugSample): AugSample {
  const image = new Uint8Array(s.image.length);
  const label = s.label ? new Uint8Array(s.label.length) : undefined;
  for (let y = 0; y < s.height; y++) {
    for (let x = 0; x < s.width; x++) {
      const src = y * s.width + x;
      const dst = y * s.width + (s.width - 1 - x);
      image[dst * 3] = s.image[src * 3];
      image[dst * 3 + 1] = s.image[src * 3 + 1];
      image[dst * 3 + 2] = s.image[src * 3 + 2];
      if (label && s.label) label[dst] = s.label[src];
    }
  }
  return { image, label, height: s.height, width: s.width };
}

/**
 * Photometric jitter after MMSegmentation's PhotoMetricDistortion: brightness, contrast,
 * saturation and hue, each applied with probability 0.5. Saturation blends with the luma
 * grey and hue rotates chroma in YIQ space (closed forms instead of an HSV round trip).
 */
export function photometric(s: AugSample, rng: Rng): AugSample {
  const beta = rng.bernoulli(0.5) ? rng.uniform(-32, 32) : 0;
  const alpha = rng.bernoulli(0.5) ? rng.uniform(0.5, 1.5) : 1;
  const sat = rng.bernoulli(0.5) ? rng.uniform(0.5, 1.5) : 1;
  const hue = rng.bernoulli(0.5) ? (rng.uniform(-18, 18) * Math.PI) / 180 : 0;
  const ch = Math.cos(hue);
  const sh = Math.sin(hue);
  const out = new Uint8Array(s.image.length);
  for (let i = 0; i < s.image.length; i += 3) {
    let r = (s.image[i] + beta) * alpha;
    let g = (s.image[i + 1] + beta) * alpha;
    let b = (s.image[i + 2] + beta) * alpha;
    const yv = 0.299 * r + 0.587 * g + 0.114 * b;
    let iv = (0.596 * r - 0.274 * g - 0.322 * b) * sat;
    let qv = (0.211 * r - 0.523 * g + 0.312 * b) * sat;
    if (hue !== 0) [iv, qv] = [iv * ch - qv * sh, iv * sh + qv * ch];
    r = yv + 0.956 * iv + 0.621 * qv;
    g = yv - 0.272 * iv - 0.647 * qv;
    b = yv - 1.106 * iv + 1.703 * qv;
    out[i] = r < 0 ? 0 : r > 255 ? 255 : Math.round(r);
    out[i + 1] = g < 0 ? 0 : g > 255 ? 255 : Math.round(g);
    out[i + 2] = b < 0 ? 0 : b > 255 ? 255 : Math.round(b);
  }
  return { ...s, image: out };
}

/** The training pipeline in MMSegmentation order: resize, crop, flip, photometric, pad. All draws come from `rng`. */
export function augment(s: AugSample, rng: Rng, o: AugmentOptions): AugSample {
  const ignore = o.ignoreIndex ?? 255;
  let x = s;
  if (o.scale) x = randomResize(x, rng, o.scale, o.ratioRange ?? [1, 1]);
  if (o.crop) x = randomCrop(x, rng, o.crop[0], o.crop[1], o.catMaxRatio ?? 1, ignore);
  if ((o.flipProb ?? 0) > 0 && rng.bernoulli(o.flipProb ?? 0)) x = flipHorizontal(x);
  if (o.photometric) x = photometric(x, rng);
  if (o.crop) x = pad(x, o.crop[0], o.crop[1], ignore);
  return x;
}
