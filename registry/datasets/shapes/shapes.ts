import { Rng } from '../../../framework/api.js';
import type { SegDataset, SegSample } from '../../../framework/api.js';
import { IGNORE_INDEX } from '../common/file-dataset.js';

/**
 * Class names of the procedural set. Class 0 is a smooth background; every other class is a
 * *texture* with a period of a few pixels. Object shape and colours are drawn independently
 * of the class, so only fine texture identifies a class -- blur, noise and JPEG destroy
 * exactly that, which is what makes the set useful for degradation-robustness experiments.
 */
export const SHAPES_CLASSES: readonly string[] = Object.freeze([
  'background', 'stripes-h', 'stripes-v', 'checker', 'dots', 'stripes-diag', 'grid', 'noise', 'zigzag',
]);

type Shape = 'ellipse' | 'rect' | 'triangle' | 'ring' | 'bar';
const SHAPE_KINDS: readonly Shape[] = ['ellipse', 'rect', 'triangle', 'ring', 'bar'];

export interface ShapesOptions {
  length: number;
  height: number;
  width: number;
  numClasses: number;
  maxObjects: number;
  seed: number;
}

/** Deterministic hash of integer coordinates to [0,1) (noise texture without a stream to consume). */
function hash01(a: number, b: number, c: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35) ^ Math.imul(c + 0x27d4eb2f, 0x165667b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  h = Math.imul(h, 0x297a2d39);
  h ^= h >>> 15;
  return (h >>> 0) / 4294967296;
}

/** Texture value in [0,1] of class `cls` at (x,y) with period `p` (pixels) and phase (ox, oy). */
function texture(cls: string, x: number, y: number, p: number, ox: number, oy: number, salt: number): number {
  const X = x + ox;
  const Y = y + oy;
  const half = p / 2;
  switch (cls) {
    case 'stripes-h':
      return Math.floor(Y / half) % 2;
    case 'stripes-v':
      return Math.floor(X / half) % 2;
    case 'stripes-diag':
      return Math.floor((X + Y) / half) % 2;
    case 'checker':
      return (Math.floor(X / half) + Math.floor(Y / half)) % 2;
    case 'dots': {
      const dx = (X % p) - half;
      const dy = (Y % p) - half;
      return dx * dx + dy * dy <= (p * p) / 10 ? 1 : 0;
    }
    case 'grid':
      return X % p < 1 || Y % p < 1 ? 1 : 0;
    case 'noise':
      return hash01(Math.floor(X), Math.floor(Y), salt) < 0.5 ? 0 : 1;
    case 'zigzag': {
      const tri = Math.abs((X % (2 * p)) - p); // triangle wave in x, amplitude p
      return Math.floor((Y + tri) / half) % 2;
    }
    default:
      return 0.5;
  }
}

function inside(shape: Shape, x: number, y: number, o: ObjectSpec): boolean {
  const dx = x - o.cx;
  const dy = y - o.cy;
  const u = (dx * o.cos + dy * o.sin) / o.rx;
  const v = (-dx * o.sin + dy * o.cos) / o.ry;
  switch (shape) {
    case 'ellipse':
      return u * u + v * v <= 1;
    case 'ring': {
      const r = u * u + v * v;
      return r <= 1 && r >= 0.3;
    }
    case 'rect':
      return Math.abs(u) <= 1 && Math.abs(v) <= 1;
    case 'bar':
      return Math.abs(u) <= 1 && Math.abs(v) <= 0.3;
    case 'triangle':
      return v <= 1 && v >= -1 && Math.abs(u) <= (v + 1) / 2;
  }
}

interface ObjectSpec {
  cls: number;
  shape: Shape;
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  cos: number;
  sin: number;
  period: number;
  ox: number;
  oy: number;
  c0: [number, number, number];
  c1: [number, number, number];
}

/** Two colours with a random mean and a random (moderate) contrast, independent of the class. */
function colourPair(rng: Rng): { c0: [number, number, number]; c1: [number, number, number] } {
  const contrast = rng.uniform(50, 120);
  const c0: [number, number, number] = [0, 0, 0];
  const c1: [number, number, number] = [0, 0, 0];
  const tint = [rng.uniform(-40, 40), rng.uniform(-40, 40), rng.uniform(-40, 40)];
  const mean = rng.uniform(70, 185);
  for (let k = 0; k < 3; k++) {
    c0[k] = mean + tint[k] - contrast / 2;
    c1[k] = mean + tint[k] + contrast / 2;
  }
  return { c0, c1 };
}

export class ShapesDataset implements SegDataset {
  readonly type = 'shapes';
  readonly classNames: readonly string[];
  readonly ignoreIndex = IGNORE_INDEX;
  readonly length: number;
  private readonly o: ShapesOptions;

  constructor(o: ShapesOptions) {
    this.o = o;
    this.length = o.length;
    this.classNames = SHAPES_CLASSES.slice(0, o.numClasses);
  }

  recipe(): { kind: 'shapes'; options: ShapesOptions } {
    return { kind: 'shapes', options: this.o };
  }

  /** Synchronous generation (the async `get` wraps it); sample i depends only on (seed, i, size options). */
  generate(index: number): SegSample {
    const { height: H, width: W, maxObjects } = this.o;
    if (!Number.isInteger(index) || index < 0 || index >= this.length) throw new RangeError(`shapes: index ${index} outside 0..${this.length - 1}`);
    const rng = Rng.derive(this.o.seed, 'shapes', index);
    const image = new Uint8Array(H * W * 3);
    const label = new Uint8Array(H * W);
    // background: smooth two-colour blend of low-frequency waves (no fine texture)
    const bg = colourPair(rng);
    const fx = rng.uniform(0.5, 2) * (2 * Math.PI) / W;
    const fy = rng.uniform(0.5, 2) * (2 * Math.PI) / H;
    const ph = rng.uniform(0, 2 * Math.PI);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const t = 0.5 + 0.25 * Math.sin(fx * x + ph) + 0.25 * Math.cos(fy * y - ph);
        const i = (y * W + x) * 3;
        for (let k = 0; k < 3; k++) image[i + k] = clamp255(bg.c0[k] + t * (bg.c1[k] - bg.c0[k]));
      }
    }
    const nObj = rng.int(Math.min(2, maxObjects), maxObjects);
    const scale = Math.min(H, W);
    for (let n = 0; n < nObj; n++) {
      const angle = rng.uniform(0, Math.PI);
      const { c0, c1 } = colourPair(rng);
      const o: ObjectSpec = {
        cls: rng.int(1, this.classNames.length - 1),
        shape: rng.choice(SHAPE_KINDS),
        cx: rng.uniform(0, W),
        cy: rng.uniform(0, H),
        rx: rng.uniform(0.12, 0.35) * scale,
        ry: rng.uniform(0.12, 0.35) * scale,
        cos: Math.cos(angle),
        sin: Math.sin(angle),
        period: rng.int(4, 7),
        ox: rng.int(0, 15),
        oy: rng.int(0, 15),
        c0,
        c1,
      };
      const name = this.classNames[o.cls];
      const salt = index * 131 + n;
      const r = Math.max(o.rx, o.ry);
      const x0 = Math.max(0, Math.floor(o.cx - r));
      const x1 = Math.min(W - 1, Math.ceil(o.cx + r));
      const y0 = Math.max(0, Math.floor(o.cy - r));
      const y1 = Math.min(H - 1, Math.ceil(o.cy + r));
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          if (!inside(o.shape, x + 0.5, y + 0.5, o)) continue;
          const t = texture(name, x, y, o.period, o.ox, o.oy, salt);
          const i = (y * W + x) * 3;
          for (let k = 0; k < 3; k++) image[i + k] = clamp255(o.c0[k] + t * (o.c1[k] - o.c0[k]));
          label[y * W + x] = o.cls;
        }
      }
    }
    const counts = new Uint32Array(this.classNames.length);
    for (let i = 0; i < label.length; i++) counts[label[i]]++;
    const tags = this.classNames.filter((_, c) => c > 0 && counts[c] > 0);
    return { id: `shapes-${index}`, image, label, width: W, height: H, tags };
  }

  sampleIds(): { id: string }[] {
    return Array.from({ length: this.length }, (_, i) => ({ id: `shapes-${i}` }));
  }

  get(index: number): Promise<SegSample> {
    return Promise.resolve(this.generate(index));
  }
}

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}
