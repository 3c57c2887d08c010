/**
 * `rass degrade`: write a degraded copy of an image folder or a dataset tree.
 *
 * Rules (documented in --help):
 * - Images (jpg, jpeg, png, webp, bmp, tif, tiff) are degraded, unless they are labels.
 * - Labels are copied byte for byte: any file under a directory named annotations, gtFine,
 *   labels, label, masks, ann_dir or SegmentationClass, or matching a --labels-glob pattern.
 *   Every other non-image file is copied unchanged too.
 * - The output mirrors the input tree. Degraded images are written as PNG (lossless, same stem)
 *   unless --format same.
 * - Determinism: sample index = FNV-1a hash of the relative path, streams from
 *   Rng.derive(seed, 'degradation', index): a resumed or re-run job writes identical files.
 * - Resume: outputs that exist are skipped. Files are written to NAME.tmp-PID and renamed, and
 *   stale *.tmp-* files of interrupted runs are removed, so no half-written file remains.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, appendFileSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { loadSharp } from '../../datasets/common/load-sharp.js';
import * as tf from '@tensorflow/tfjs-core';
import { Rng, UserError, buildComponent, ensureWritableDir, consoleLogger, initBackend, isComponentNode, loadConfig, loadConfigPlugins, parseBackendName, validateConfig, type CommandSpec, type Degradation, type PluginRegistry } from '../../../framework/api.js';
import { roundHalfEven } from '../../../framework/api.js';
import { readRgb } from '../../datasets/common/image-io.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff'];
export const LABEL_DIRS = ['annotations', 'gtFine', 'labels', 'label', 'masks', 'ann_dir', 'SegmentationClass'];
const TMP_RE = /\.tmp-\d+$/;

/** Minimal glob: `**` any path, `*` any chars but '/', `?` one char; matched against the relative path with '/' separators. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === '*' && glob[i + 1] === '*') {
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Stable 31-bit sample index of a relative path (FNV-1a). */
export function pathSampleIndex(rel: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(rel, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h & 0x7fffffff;
}

export interface DegradeOptions {
  pipeline: string;
  input: string;
  output: string;
  seed: number;
  onError: 'skip' | 'stop';
  labelsGlob: string[];
  format: 'png' | 'same';
  record?: string;
  log: (line: string) => void;
  /** Resolves the pipeline's plugin types: the CLI's registry (built-in and third-party packages). */
  registry: PluginRegistry;
}

export interface DegradeSummary {
  degraded: string[];
  copied: string[];
  resumed: string[];
  skipped: { file: string; reason: string }[];
}

function walk(dir: string, root: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, root, out);
    else if (e.isFile()) out.push(relative(root, p).split(sep).join('/'));
  }
}

function removeStaleTemps(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) removeStaleTemps(p);
    else if (TMP_RE.test(e.name)) rmSync(p, { force: true });
  }
}

/**
 * Load a pipeline file through the config system (extends, !patch, interpolation, schema
 * validation with file:line:col errors; third-party degradations through its `plugins:` list or
 * the registry's packages) and build it.
 */
export async function loadPipeline(file: string, registry: PluginRegistry): Promise<Degradation> {
  const cfg = await loadConfig(file);
  const node = cfg.value;
  if (!isComponentNode(node) || !node.type.startsWith('degradation/')) {
    throw new UserError(`${file}: expected a degradation component node at the top level ({ type: degradation/pipeline, stages: [...] })`);
  }
  await loadConfigPlugins(cfg, registry);
  // `plugins:` is the file's, not the pipeline plugin's option
  delete (node as Record<string, unknown>).plugins;
  validateConfig(cfg, registry, {});
  return buildComponent<Degradation>(node, registry, { seed: 0, log: consoleLogger, cfg, path: '', expectKind: 'degradation' });
}


async function encode(rgb: Uint8Array, width: number, height: number, ext: string): Promise<Buffer> {
  const sharp = await loadSharp();
  const img = sharp(rgb, { raw: { width, height, channels: 3 } });
  switch (ext) {
    case '.jpg':
    case '.jpeg':
      return img.jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
    case '.webp':
      return img.webp({ lossless: true }).toBuffer();
    case '.tif':
    case '.tiff':
      return img.tiff().toBuffer();
    default:
      return img.png().toBuffer();
  }
}

/** Degrade one image file into `outFile` (through a temporary name). Returns the sampled params. */
async function degradeFile(d: Degradation, inFile: string, outFile: string, seed: number, index: number, ext: string): Promise<Record<string, unknown>> {
  const { data, width, height } = await readRgb(inFile);
  const rec: Record<string, unknown>[] = [{}];
  const x = tf.tensor4d(Float32Array.from(data, (v) => v / 255), [1, height, width, 3]);
  let y: tf.Tensor4D;
  try {
    y = await d.apply(x, { rng: [Rng.derive(seed, 'degradation', index)], record: rec });
  } catch (e) {
    x.dispose();
    throw e;
  }
  const [, oh, ow] = y.shape;
  const vals = y.dataSync();
  if (y !== x) y.dispose();
  x.dispose();
  const out = new Uint8Array(vals.length);
  for (let i = 0; i < vals.length; i++) out[i] = Math.min(Math.max(roundHalfEven(vals[i] * 255), 0), 255);
  const buf = await encode(out, ow, oh, ext);
  const tmp = `${outFile}.tmp-${process.pid}`;
  mkdirSync(dirname(outFile), { recursive: true });
  try {
    writeFileSync(tmp, buf);
    renameSync(tmp, outFile);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return rec[0];
}

/** --input must be a folder and --output a writable place outside it: the user's to fix, said before any work. */
function checkTreePaths(o: Pick<DegradeOptions, 'input' | 'output'>): { input: string; output: string } {
  const input = resolve(o.input);
  const output = resolve(o.output);
  if (!existsSync(input) || !statSync(input).isDirectory()) throw new UserError(`--input ${o.input}: not a directory`);
  if (output === input || output.startsWith(input + sep)) throw new UserError(`--output ${o.output} must not be inside --input ${o.input}`);
  ensureWritableDir(output, '--output');
  return { input, output };
}

export async function degradeTree(o: DegradeOptions): Promise<DegradeSummary> {
  const { input, output } = checkTreePaths(o);
  const d = await loadPipeline(o.pipeline, o.registry);
  removeStaleTemps(output);
  const files: string[] = [];
  walk(input, input, files);
  const labelRes = o.labelsGlob.map(globToRegExp);
  const isLabel = (rel: string) => rel.split('/').slice(0, -1).some((s) => LABEL_DIRS.includes(s)) || labelRes.some((r) => r.test(rel));
  const summary: DegradeSummary = { degraded: [], copied: [], resumed: [], skipped: [] };
  const images = files.filter((f) => IMAGE_EXTENSIONS.includes(extname(f).toLowerCase()) && !isLabel(f));
  const others = files.filter((f) => !images.includes(f));
  for (const rel of others) {
    const dst = join(output, rel);
    if (existsSync(dst)) continue;
    mkdirSync(dirname(dst), { recursive: true });
    const tmp = `${dst}.tmp-${process.pid}`;
    copyFileSync(join(input, rel), tmp);
    renameSync(tmp, dst);
    summary.copied.push(rel);
  }
  o.log(`degrade: ${images.length} images to degrade, ${others.length} other files (labels etc.) copied unchanged (${summary.copied.length} new)`);
  const t0 = Date.now();
  let lastLog = t0;
  for (let k = 0; k < images.length; k++) {
    const rel = images[k];
    const ext = o.format === 'png' ? '.png' : extname(rel).toLowerCase() === '.bmp' ? '.png' : extname(rel).toLowerCase();
    const outRel = rel.slice(0, rel.length - extname(rel).length) + ext;
    const dst = join(output, outRel);
    if (existsSync(dst)) {
      summary.resumed.push(rel);
    } else {
      const index = pathSampleIndex(rel);
      try {
        const params = await degradeFile(d, join(input, rel), dst, o.seed, index, ext);
        summary.degraded.push(rel);
        if (o.record) appendFileSync(o.record, JSON.stringify({ file: rel, output: outRel, seed: o.seed, sampleIndex: index, backend: tf.getBackend(), params }) + '\n');
      } catch (e) {
        const reason = (e as Error).message;
        if (o.onError === 'stop') throw e instanceof UserError ? e : new UserError(`${join(input, rel)}: ${reason}`, { cause: e });
        summary.skipped.push({ file: rel, reason });
        o.log(`degrade: skipped ${rel}: ${reason}`);
      }
    }
    const now = Date.now();
    if (now - lastLog > 2000 || k === images.length - 1) {
      lastLog = now;
      const rate = summary.degraded.length / Math.max((now - t0) / 1000, 1e-3);
      o.log(`degrade: ${k + 1}/${images.length} (${summary.degraded.length} written, ${summary.resumed.length} already done, ${summary.skipped.length} skipped, ${rate.toFixed(2)} images/s)`);
    }
  }
  o.log(`degrade: done: ${summary.degraded.length} degraded, ${summary.resumed.length} already present, ${summary.copied.length} copied, ${summary.skipped.length} skipped`);
  if (summary.skipped.length) {
    o.log('degrade: skipped files:');
    for (const s of summary.skipped) o.log(`  ${s.file}: ${s.reason}`);
  }
  return summary;
}

export const degradeCommand: CommandSpec = {
  name: 'degrade',
  summary: 'write a degraded copy of an image folder or dataset tree (labels copied unchanged; resumable; deterministic per file)',
  configure(cmd, ctx) {
    cmd
      .requiredOption('--pipeline <config>', 'YAML file with a degradation component node (e.g. configs/_base_/degradations/rass-full.yaml)')
      .requiredOption('--input <dir>', 'input folder or dataset root')
      .requiredOption('--output <dir>', 'output folder (mirrors the input tree)')
      .option('--seed <n>', 'master seed', '0')
      .option('--on-error <mode>', 'skip | stop: what to do with an unreadable image', 'stop')
      .option('--labels-glob <glob...>', `extra patterns (relative paths) of files to copy unchanged; always copied: files under ${LABEL_DIRS.join(', ')} and non-images`)
      .option('--format <fmt>', 'png (lossless, default) | same (input format; jpg written at q95 4:4:4)', 'png')
      .option('--record <file>', 'append the sampled parameters of every degraded file to this JSONL file')
      .option('--backend <name>', 'tfjs backend: wasm (default: the same bytes on every machine, so a resumed job matches what it wrote before), auto (native, then wasm, then cpu), tensorflow or cpu', 'wasm')
      .action(async (opts: { pipeline: string; input: string; output: string; seed: string; onError: string; labelsGlob?: string[]; format: string; record?: string; backend: string }) => {
        const seed = Number(opts.seed);
        if (!Number.isInteger(seed)) throw new UserError(`--seed must be an integer, got "${opts.seed}"`);
        if (opts.onError !== 'skip' && opts.onError !== 'stop') throw new UserError(`--on-error must be skip or stop, got "${opts.onError}"`);
        if (opts.format !== 'png' && opts.format !== 'same') throw new UserError(`--format must be png or same, got "${opts.format}"`);
        const abs = (p: string) => resolve(ctx.cwd, p);
        let prefer;
        try {
          prefer = parseBackendName(opts.backend, '--backend');
        } catch (e) {
          throw new UserError((e as Error).message);
        }
        checkTreePaths({ input: abs(opts.input), output: abs(opts.output) });
        // the framework's backend chain, as for `rass run` (the tree is degraded on it)
        const backend = await initBackend({ prefer, log: (line: string) => ctx.stderr.write(line + '\n') });
        ctx.stdout.write(`degrade: backend ${backend.name}\n`);
        await degradeTree({
          registry: ctx.registry,
          pipeline: abs(opts.pipeline), input: abs(opts.input), output: abs(opts.output), seed, onError: opts.onError,
          labelsGlob: opts.labelsGlob ?? [], format: opts.format, record: opts.record ? abs(opts.record) : undefined,
          log: (line) => ctx.stdout.write(line + '\n'),
        });
      });
  },
};
