/**
 * `npm run bench -- metrics`: this project's metrics against NumPy / scikit-image on the same data.
 *
 * - metrics.miou: confusion-matrix accumulation + detectron2 summary over 2,000 512x512 label maps
 *   (150 classes, ~5% ignore), vs NumPy as detectron2 does it (np.bincount per image).
 * - metrics.ssim: BasicSR SSIM (11x11 Gaussian, valid region, float64, RGB) over 100 512x512 pairs,
 *   vs skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
 *   use_sample_covariance=False, data_range=255, channel_axis=2).
 *
 * Data are generated here once (seeded) and handed to the peer as raw files in a temp dir; both
 * sides cycle over the same distinct maps/pairs. Throughput = items per second; ratio = ours / peer's.
 * Args: --maps N (2000), --pairs N (100).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../framework/engine/rng.js';
import { packageRoot } from '../framework/paths.js';
import { formatTable } from '../framework/output/table.js';
import { SegmentationMetric } from '../registry/metrics/miou/segmentation.js';
import { ssim } from '../registry/metrics/common/psnr-ssim.js';
import { benchLine } from './_format.js';

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

const N_CLASSES = 150;
const DISTINCT_MAPS = 16;
const DISTINCT_PAIRS = 8;
const HW = 512;

/** Blocky GT (16x16 blocks of one class, 5% ignore) and a prediction that is right on ~70% of pixels. */
function labelPair(rng: Rng): [Uint8Array, Uint8Array] {
  const gt = new Uint8Array(HW * HW);
  const pred = new Uint8Array(HW * HW);
  const blocks = HW / 16;
  const cls = Array.from({ length: blocks * blocks }, () => rng.int(0, N_CLASSES - 1));
  for (let y = 0; y < HW; y++) {
    for (let x = 0; x < HW; x++) {
      const i = y * HW + x;
      const c = cls[(y >> 4) * blocks + (x >> 4)];
      const u = rng.random();
      gt[i] = u < 0.05 ? 255 : c;
      pred[i] = rng.random() < 0.7 ? c : rng.int(0, N_CLASSES - 1);
    }
  }
  return [pred, gt];
}

/** A smooth RGB image and a noisy version of it. */
function imagePair(rng: Rng): [Uint8Array, Uint8Array] {
  const a = new Uint8Array(HW * HW * 3);
  const b = new Uint8Array(HW * HW * 3);
  const fx = rng.uniform(0.01, 0.05);
  const fy = rng.uniform(0.01, 0.05);
  for (let i = 0; i < HW * HW; i++) {
    const y = Math.floor(i / HW);
    const x = i % HW;
    for (let c = 0; c < 3; c++) {
      const v = 128 + 80 * Math.sin(fx * x * (c + 1)) * Math.cos(fy * y) + rng.uniform(-10, 10);
      a[3 * i + c] = Math.max(0, Math.min(255, Math.round(v)));
      b[3 * i + c] = Math.max(0, Math.min(255, Math.round(v + rng.uniform(-25, 25))));
    }
  }
  return [a, b];
}

export async function run(args: string[]): Promise<void> {
  const numMaps = arg(args, '--maps', 2000);
  const numPairs = arg(args, '--pairs', 100);
  const root = packageRoot();
  const dir = mkdtempSync(join(tmpdir(), 'rass-bench-metrics-'));
  try {
    const labels = Array.from({ length: DISTINCT_MAPS }, (_, k) => labelPair(Rng.derive(1234, 'bench-metrics', 'labels', k)));
    const images = Array.from({ length: DISTINCT_PAIRS }, (_, k) => imagePair(Rng.derive(1234, 'bench-metrics', 'images', k)));
    writeFileSync(join(dir, 'labels.u8'), Buffer.concat(labels.flatMap(([p, g]) => [p, g])));
    writeFileSync(join(dir, 'images.u8'), Buffer.concat(images.flatMap(([a, b]) => [a, b])));
    const spec = {
      num_classes: N_CLASSES, ignore_index: 255, label_hw: [HW, HW], distinct_maps: DISTINCT_MAPS, num_maps: numMaps, labels_file: join(dir, 'labels.u8'),
      image_hw: [HW, HW], distinct_pairs: DISTINCT_PAIRS, num_pairs: numPairs, images_file: join(dir, 'images.u8'),
    };
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));

    // ours
    const metric = new SegmentationMetric({ numClasses: N_CLASSES, ignoreIndex: 255, reduceZeroLabel: false, convention: 'detectron2' });
    let t0 = performance.now();
    for (let i = 0; i < numMaps; i++) {
      const [p, g] = labels[i % DISTINCT_MAPS];
      metric.update({ segPred: [{ data: p, height: HW, width: HW }], segGt: [{ data: g, height: HW, width: HW }], ids: [`map${i}`] });
    }
    const ourMiou = metric.compute().scalars.miou;
    const ourMiouS = (performance.now() - t0) / 1000;
    t0 = performance.now();
    let ssimSum = 0;
    for (let i = 0; i < numPairs; i++) {
      const [a, b] = images[i % DISTINCT_PAIRS];
      ssimSum += ssim({ data: a, height: HW, width: HW, channels: 3 }, { data: b, height: HW, width: HW, channels: 3 }, { cropBorder: 0, testYChannel: false });
    }
    const ourSsimS = (performance.now() - t0) / 1000;
    const ourSsim = ssimSum / numPairs;

    // peer
    const req = join(root, 'scripts/fixtures/metrics/bench-requirements.txt');
    const venv = execFileSync(join(root, 'scripts/py-venv.sh'), ['metrics-bench', req], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    const out = execFileSync(join(venv, 'bin/python'), [join(root, 'scripts/fixtures/metrics/bench_peer.py'), join(dir, 'spec.json')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const peer = JSON.parse(out.trim().split('\n').pop()!) as { miou_s: number; miou: number; ssim_s: number; ssim_mean: number };

    const miouTp = numMaps / ourMiouS;
    const peerMiouTp = numMaps / peer.miou_s;
    const ssimTp = numPairs / ourSsimS;
    const peerSsimTp = numPairs / peer.ssim_s;
    console.log(formatTable(
      ['task', 'impl', 'seconds', 'items/s', 'value'],
      [
        [`mIoU ${numMaps} x ${HW}x${HW}, ${N_CLASSES} classes`, 'rass (TypeScript)', ourMiouS.toFixed(3), miouTp.toFixed(1), ourMiou.toFixed(10)],
        ['', 'numpy bincount (detectron2)', peer.miou_s.toFixed(3), peerMiouTp.toFixed(1), peer.miou.toFixed(10)],
        [`SSIM ${numPairs} x ${HW}x${HW} RGB`, 'rass (TypeScript, float64)', ourSsimS.toFixed(3), ssimTp.toFixed(2), ourSsim.toFixed(12)],
        ['', 'scikit-image structural_similarity', peer.ssim_s.toFixed(3), peerSsimTp.toFixed(2), peer.ssim_mean.toFixed(12)],
      ],
    ));
    const dm = Math.abs(ourMiou - peer.miou);
    const ds = Math.abs(ourSsim - peer.ssim_mean);
    console.log(`value agreement: |mIoU diff| = ${dm.toExponential(2)}, |SSIM diff| = ${ds.toExponential(2)}`);
    if (dm > 1e-9 || ds > 1e-9) console.log('WARNING: values disagree with the peer beyond 1e-9');
    console.log(benchLine('metrics.miou', miouTp, 'maps/s', 'numpy', peerMiouTp, miouTp / peerMiouTp));
    console.log(benchLine('metrics.ssim', ssimTp, 'pairs/s', 'scikit-image', peerSsimTp, ssimTp / peerSsimTp));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
