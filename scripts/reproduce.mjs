#!/usr/bin/env node
/**
 * `npm run reproduce [-- --seeds 3] [--steps N] [--set key=value ...]`: the RASS paper's comparison on the
 * procedural benchmark (64x64 shapes, rass-full degradation, the pretrained tiny prior), every
 * method with the same data, head and budget, three seeds each:
 *   SCR (lambda > 0) and the plain restoration LoRA (lambda = 0): PSNR and attention agreement;
 *   DT (trained on clean images), FT (on degraded ones), R2S (SCR restores, DT segments),
 *   RASS (SCR merged), RASS without the merge (frozen adapter), RASS on the plain prior.
 * Every run is an ordinary run under runs/reproduce/ with a fixed id (repro-<method>-s<seed>), so
 * an interrupted reproduce resumes: finished runs are kept, unfinished ones resumed.
 * Writes the table (mean +- std over seeds) to runs/reproduce/table.md and into README.md between
 * the reproduce markers, with the command and the time it took.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);
const argv = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const seeds = Array.from({ length: Number(flag('--seeds', '3')) }, (_, i) => i);
const extra = argv.flatMap((a, i) => (a === '--set' ? ['--set', argv[i + 1]] : []));
// --steps N: every training run (SCR, DT, FT, RASS) for N steps only, a smoke test of the whole
// chain in a few minutes; its table is not written into the README
const smokeSteps = flag('--steps', null);
const trainSets = smokeSteps ? [`experiment.steps=${smokeSteps}`, `experiment.eval_every=${smokeSteps}`, `experiment.checkpoint_every=${smokeSteps}`] : [];
const runsDir = resolve(root, flag('--runs-dir', 'runs/reproduce'));
const cli = join(root, 'dist', 'bin', 'rass.js');
mkdirSync(runsDir, { recursive: true });

// Finished runs are reused by id, so a runs dir belongs to the prior (and the smoke budget and
// --set overrides) that made it: a re-run after the prior changed must not mix old runs into the
// new table. The stamp is the sha256 of the prior's weights and configs plus those settings.
function priorStamp() {
  const h = createHash('sha256');
  const prior = join(root, 'models', 'tiny-shapes');
  for (const f of ['vae/config.json', 'vae/diffusion_pytorch_model.safetensors', 'unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors']) {
    h.update(f);
    h.update(readFileSync(join(prior, f)));
  }
  h.update(JSON.stringify({ smoke: flag('--steps', null), extra: argv.flatMap((a, i) => (a === '--set' ? [argv[i + 1]] : [])) }));
  return h.digest('hex');
}
const stampFile = join(runsDir, 'prior.sha256');
const stamp = priorStamp();
if (existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() !== stamp) {
  console.error(`[reproduce] ${runsDir} holds runs made with another prior (models/tiny-shapes) or other --steps/--set settings (${stampFile} differs); move it away or pass --runs-dir DIR`);
  process.exit(2);
}
if (!existsSync(stampFile) && readdirSync(runsDir).some((e) => e !== 'table.md')) {
  console.error(`[reproduce] ${runsDir} holds runs with no ${stampFile}: it cannot tell which prior made them; move it away or pass --runs-dir DIR`);
  process.exit(2);
}
writeFileSync(stampFile, `${stamp}\n`);

function journalStatus(runId) {
  for (const exp of existsSync(runsDir) ? readdirSync(runsDir) : []) {
    const j = join(runsDir, exp, runId, 'journal.jsonl');
    if (!existsSync(j)) continue;
    const events = readFileSync(j, 'utf8').trim().split('\n').flatMap((l) => {
      try {
        return [JSON.parse(l)];
      } catch {
        return [];
      }
    });
    const status = events.filter((e) => e.type === 'status').pop()?.status;
    const metrics = {};
    for (const e of events) if (e.type === 'metrics') Object.assign(metrics, e.values);
    return { dir: join(runsDir, exp, runId), status, metrics };
  }
  return null;
}

function run(runId, config, sets, train = true) {
  const prev = journalStatus(runId);
  if (prev?.status === 'FINISHED') {
    console.log(`[reproduce] ${runId}: finished earlier`);
    return prev;
  }
  const args = prev ? ['run', '--resume', runId, '--runs-dir', runsDir] : ['run', config, '--run-id', runId, '--set', `runs_dir=${runsDir}`, ...[...sets, ...(train ? trainSets : [])].flatMap((s) => ['--set', s]), ...extra];
  console.log(`[reproduce] ${runId}: rass ${args.join(' ')}`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, CI: 'true' } });
  const after = journalStatus(runId);
  if (r.status !== 0 || after?.status !== 'FINISHED') {
    console.error(`[reproduce] ${runId} did not finish (exit ${r.status}); re-run npm run reproduce to resume it`);
    process.exit(1);
  }
  console.log(`[reproduce] ${runId}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return after;
}

const started = Date.now();
const results = {}; // method -> metric -> values over seeds
const record = (method, metrics, keys) => {
  results[method] ??= {};
  for (const k of keys) (results[method][k] ??= []).push(metrics[k]);
};
const SEG = ['val_lq/miou', 'val_hq/miou'];
for (const s of seeds) {
  const seed = [`seed=${s}`];
  const scr = run(`repro-scr-s${s}`, 'configs/scr/shapes-tiny.yaml', seed);
  const plain = run(`repro-scr-plain-s${s}`, 'configs/scr/shapes-tiny-plain.yaml', seed);
  record('SCR (lambda > 0)', scr.metrics, ['val/psnr', 'val/ssim', 'val/attn_agreement', 'zero_lora/psnr', 'val/lq_psnr']);
  record('restoration LoRA (lambda = 0)', plain.metrics, ['val/psnr', 'val/ssim', 'val/attn_agreement', 'zero_lora/psnr', 'val/lq_psnr']);
  const fromRun = (id) => `experiment.scr_adapter.from_run=${id}`;
  const dt = run(`repro-dt-s${s}`, 'configs/baselines/shapes-dt.yaml', seed);
  record('DT', dt.metrics, SEG);
  record('FT', run(`repro-ft-s${s}`, 'configs/baselines/shapes-ft.yaml', seed).metrics, SEG);
  const r2s = run(`repro-r2s-s${s}`, 'configs/baselines/shapes-r2s.yaml', [...seed, `experiment.segmenter=repro-dt-s${s}`, `experiment.restorer=repro-scr-s${s}`], false);
  record('R2S (SCR restores, DT segments)', { 'val_lq/miou': r2s.metrics.miou, 'restored/psnr': r2s.metrics['restored/psnr'] }, ['val_lq/miou']);
  record('RASS', run(`repro-rass-s${s}`, 'configs/rass/shapes-tiny.yaml', [...seed, fromRun(`repro-scr-s${s}`)]).metrics, SEG);
  record('RASS, SCR adapter not merged', run(`repro-rass-nomerge-s${s}`, 'configs/rass/shapes-tiny.yaml', [...seed, fromRun(`repro-scr-s${s}`), 'experiment.merge_scr=false']).metrics, SEG);
  record('RASS on the lambda = 0 prior', run(`repro-rass-plain-s${s}`, 'configs/rass/shapes-tiny.yaml', [...seed, fromRun(`repro-scr-plain-s${s}`)]).metrics, SEG);
}
const minutes = (Date.now() - started) / 60000;

const fmt = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return '-';
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0;
  return `${m.toFixed(2)} ± ${sd.toFixed(2)}`;
};
const segRows = ['DT', 'FT', 'R2S (SCR restores, DT segments)', 'RASS', 'RASS, SCR adapter not merged', 'RASS on the lambda = 0 prior'];
const resRows = ['SCR (lambda > 0)', 'restoration LoRA (lambda = 0)'];
const cmd = `npm run reproduce${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
const lines = [
  `Segmentation (mIoU %, detectron2 convention; mean ± std over ${seeds.length} seeds):`,
  '',
  '| method | degraded val (LQ) | clean val (HQ) |',
  '|---|---|---|',
  ...segRows.map((m) => `| ${m} | ${fmt(results[m]?.['val_lq/miou'] ?? [])} | ${fmt(results[m]?.['val_hq/miou'] ?? [])} |`),
  '',
  'Restoration (validation, rass-full degradation):',
  '',
  '| method | PSNR | SSIM | attention-mask agreement | zero-LoRA PSNR | LQ input PSNR |',
  '|---|---|---|---|---|---|',
  ...resRows.map((m) => `| ${m} | ${fmt(results[m]?.['val/psnr'] ?? [])} | ${fmt(results[m]?.['val/ssim'] ?? [])} | ${fmt(results[m]?.['val/attn_agreement'] ?? [])} | ${fmt(results[m]?.['zero_lora/psnr'] ?? [])} | ${fmt(results[m]?.['val/lq_psnr'] ?? [])} |`),
  '',
  `Made by \`${cmd}\` in ${minutes.toFixed(0)} min on ${process.env.RASS_MACHINE ?? 'this machine'} (runs in ${runsDir.replace(`${root}/`, '')}/).`,
];
const table = lines.join('\n');
writeFileSync(join(runsDir, 'table.md'), `${table}\n`);
console.log(`\n${table}\n`);
const readme = join(root, 'README.md');
const text = readFileSync(readme, 'utf8');
const begin = '<!-- reproduce:begin -->';
const end = '<!-- reproduce:end -->';
if (smokeSteps) {
  console.log(`[reproduce] --steps ${smokeSteps} is a smoke budget: README.md not updated (the table is in ${join(runsDir, 'table.md')})`);
} else if (text.includes(begin) && text.includes(end)) {
  writeFileSync(readme, `${text.slice(0, text.indexOf(begin) + begin.length)}\n${table}\n${text.slice(text.indexOf(end))}`);
  console.log('[reproduce] README.md updated');
} else {
  console.log(`[reproduce] README.md has no ${begin} ... ${end} markers; the table is in ${join(runsDir, 'table.md')}`);
}
