#!/usr/bin/env node
/**
 * `npm run setup:native [-- --cuda] [-- --force]`: give tfjs a native TensorFlow backend on
 * machines where `@tensorflow/tfjs-node`'s install cannot download libtensorflow.
 *
 * 1. a project venv with TensorFlow from PyPI (CPU build; `--cuda` takes the CUDA 12 extra),
 *    via scripts/py-venv.sh (keyed by the requirements file, reused when present);
 * 2. the tfjs-node JavaScript package into native/node_modules with --ignore-scripts;
 * 3. tfjs-node's own binding.gyp compiled with node-gyp, after applying the repository's patches
 *    (native/patches/*.patch: the compiled-step entry point registerFunction) to the pristine
 *    binding sources (kept in binding.pristine/ the first time, so a changed patch re-applies) (npm's bundled copy, Node headers
 *    from the local install) against the wheel's C/eager-C API headers and
 *    libtensorflow_cc / libtensorflow_framework, with an $ORIGIN-relative rpath to them, so
 *    nothing needs LD_LIBRARY_PATH;
 * 3b. rass's own TensorFlow kernels (native/ops/*.cc: attention, GroupNorm / LayerNorm, GEGLU / SiLU, grid sampling, AdamW and the gradient norm) compiled with the
 *    system C++ compiler against the same wheel into native/build/rass_ops.node; a change there
 *    rebuilds only them, and a failure costs only them (the composite ops then run instead);
 * 4. a check that the built backend loads and multiplies matrices.
 * Nothing is downloaded outside the package registries. A second run reuses what is built
 * (native/build-info.json records what was built from what).
 *
 * `--install` (npm's postinstall): one progress line per phase, tool output hidden, and a
 * failure is one line saying why, that rass falls back to wasm and how to retry; exit 0 so
 * the install itself succeeds. `RASS_NATIVE=0` skips it. `--check`: report whether a build
 * exists and loads, never build (exit 0 yes, 3 no): `npm test` uses it, so running the tests
 * never changes which backend later commands get (it does rebuild native/ops when those sources
 * changed: they are this project's code, as dist/ is).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync, lstatSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const args = new Set(process.argv.slice(2));
const cuda = args.has('--cuda');
const force = args.has('--force');
const install = args.has('--install');
const check = args.has('--check');
const quiet = args.has('--quiet') || install;
const log = (m) => console.log(`[setup:native] ${m}`);
const fail = (m) => {
  if (install) {
    log(`native TensorFlow backend not built (${m}); rass uses wasm. Retry with \`npm run setup:native\` (it shows the full output)`);
    process.exit(0);
  }
  console.error(`[setup:native] FAILED: ${m}`);
  process.exit(1);
};

if (install && process.env.RASS_NATIVE === '0') {
  log('skipped (RASS_NATIVE=0): rass uses wasm; `npm run setup:native` builds the native backend later');
  process.exit(0);
}

const reqFile = join(nativeDir, cuda ? 'requirements-cuda.txt' : 'requirements-cpu.txt');
const pkgDir = join(nativeDir, 'node_modules', '@tensorflow', 'tfjs-node');
const bindingOut = join(pkgDir, 'lib', 'napi-v8', 'tfjs_binding.node');
const infoFile = join(nativeDir, 'build-info.json');

function sha(...files) {
  const h = createHash('sha256');
  for (const f of files) h.update(readFileSync(f));
  return h.digest('hex').slice(0, 16);
}

const patchDir = join(nativeDir, 'patches');
const patches = existsSync(patchDir) ? readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort().map((f) => join(patchDir, f)) : [];
// The patches are part of the key (and recorded as `patch`), so a changed patch rebuilds.
const want = { key: sha(reqFile, join(nativeDir, 'package.json'), fileURLToPath(import.meta.url), ...patches), node: process.versions.modules, cuda, patch: patches.length ? sha(...patches) : null };
const opsDir = join(nativeDir, 'ops');
const opsSources = existsSync(opsDir) ? readdirSync(opsDir).filter((f) => f.endsWith('.cc')).sort().map((f) => join(opsDir, f)) : [];
const opsOut = join(nativeDir, 'build', 'rass_ops.node');
const opsKey = opsSources.length ? sha(...opsSources) : null;

/**
 * 3b: compile native/ops/*.cc into one loadable library (an empty Node-API module whose static
 * initialisers register the ops with TensorFlow) against the wheel at `tfDir`, with an rpath
 * to its libtensorflow_framework. Returns null when built, else the reason.
 */
function buildOps(tfDir) {
  // a library left from an earlier build must not be loaded if this one does not make it
  rmSync(opsOut, { force: true });
  if (!opsSources.length) return 'no sources in native/ops';
  // CPU kernels only: on the CUDA build TensorFlow would run them on the CPU, copying every
  // attention's inputs off the GPU and back, where the composite ops stay on the GPU
  if (cuda) return 'the CUDA build: these are CPU kernels, and the composite ops run on the GPU';
  const nodeDir = [process.env.npm_config_nodedir, resolve(dirname(process.execPath), '..')].find((d) => d && existsSync(join(d, 'include', 'node', 'node_api.h')));
  if (!nodeDir) return 'Node headers (include/node/node_api.h) not found next to the node binary';
  let cpuFlags = new Set();
  try {
    cpuFlags = new Set((readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/));
  } catch {
    /* not Linux: baseline code */
  }
  // The vector extensions this CPU has, named (AVX2 + FMA, and AVX-512 F/BW/DQ/VL where present:
  // Eigen's tile products and exps use them; the AVX-512 build ran the attention forward 1.25x
  // faster on an AMD EPYC), not -march=native's whole tuning, so a build copied to a machine
  // with the same extensions still runs.
  const has = (...f) => process.arch === 'x64' && f.every((x) => cpuFlags.has(x));
  const simd = [...(has('avx2', 'fma') ? ['-mavx2', '-mfma'] : []), ...(has('avx2', 'fma', 'avx512f', 'avx512bw', 'avx512dq', 'avx512vl') ? ['-mavx512f', '-mavx512bw', '-mavx512dq', '-mavx512vl'] : [])];
  mkdirSync(dirname(opsOut), { recursive: true });
  const cxx = process.env.CXX || 'g++';
  const args = ['-shared', '-fPIC', '-O3', ...simd, '-std=c++17', '-w', '-D_GLIBCXX_USE_CXX11_ABI=1', '-DEIGEN_MAX_ALIGN_BYTES=64', `-I${join(tfDir, 'include')}`, `-I${join(nodeDir, 'include', 'node')}`, ...opsSources, '-o', opsOut, `-L${tfDir}`, '-l:libtensorflow_framework.so.2', `-Wl,-rpath,$ORIGIN/${relative(dirname(opsOut), tfDir)}`];
  const r = spawnSync(cxx, args, { encoding: 'utf8' });
  if (r.status !== 0) return `${cxx} failed: ${(r.stderr || r.error?.message || '').trim().split('\n').filter((l) => /error/.test(l)).slice(0, 3).join(' | ') || 'see its output'}`;
  return null;
}
function reportOps(why) {
  if (why) log(`WARNING: rass's fused kernels (native/ops) not built (${why}); attention, norms, GEGLU / SiLU, grid sampling, AdamW and the gradient norm run as composite ops`);
  else log(`built rass's fused kernels (${opsSources.map((f) => relative(root, f)).join(', ')}) into ${relative(root, opsOut)}`);
}

function verify() {
  // A child process, so a crashing library cannot take this script down with it.
  const code = `
    // TensorFlow's start-up notices only when RASS_TF_LOG asks (as framework/engine/native-binding.ts)
    process.env.TF_CPP_MIN_LOG_LEVEL = process.env.RASS_TF_LOG ? (process.env.TF_CPP_MIN_LOG_LEVEL ?? '0') : '2';
    const { createRequire } = require('node:module');
    const tf = createRequire(${JSON.stringify(join(nativeDir, 'package.json'))})('@tensorflow/tfjs-node');
    const a = tf.randomNormal([512, 512]);
    tf.matMul(a, a).dataSync();
    const t0 = performance.now(); let n = 0;
    // (the block returns nothing: tf.tidy walks returned values, and a typed array makes that slow)
    while (performance.now() - t0 < 500) { tf.tidy(() => { tf.matMul(a, a).dataSync(); }); n++; }
    const gf = (2 * 512 ** 3 * n) / ((performance.now() - t0) / 1000) / 1e9;
    console.log(JSON.stringify({ backend: tf.getBackend(), tf: tf.version.tfjs, gflops: Math.round(gf) }));`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, why: (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ') };
  try {
    return { ok: true, ...JSON.parse(r.stdout.trim().split('\n').pop()) };
  } catch {
    return { ok: false, why: r.stdout };
  }
}

if (!force && existsSync(infoFile) && existsSync(bindingOut)) {
  const info = JSON.parse(readFileSync(infoFile, 'utf8'));
  if (info.key === want.key && info.node === want.node && info.cuda === want.cuda) {
    const v = verify();
    if (v.ok && (info.ops !== opsKey || (opsKey && !existsSync(opsOut)))) {
      // only the kernels changed (or are missing): rebuild just them, under --check too (like
      // `npm run build` before the tests, it compiles this project's own sources, ~20 s)
      const why = buildOps(join(root, info.venv, 'lib', readdirSync(join(root, info.venv, 'lib')).find((d) => d.startsWith('python3')) ?? 'python3', 'site-packages', 'tensorflow'));
      reportOps(why);
      writeFileSync(infoFile, JSON.stringify({ ...info, ops: why ? null : opsKey }, null, 2) + '\n');
    }
    if (v.ok) {
      const opsNow = JSON.parse(readFileSync(infoFile, 'utf8')).ops;
      log(`already built (TensorFlow ${info.tensorflow}, ${cuda ? 'CUDA' : 'CPU'}); backend "${v.backend}" loads, 512x512 matmul ${v.gflops} GFLOP/s; fused kernels ${opsNow ? 'built' : 'not built'}`);
      process.exit(0);
    }
    log(`previous build does not load (${v.why}); rebuilding`);
  }
}
if (check) {
  log(existsSync(infoFile) ? 'the native build is outdated or does not load (`npm run setup:native` rebuilds it)' : 'not built (`npm install` or `npm run setup:native` builds it)');
  process.exit(3);
}

// 1. TensorFlow from PyPI in a project venv.
log(`${install ? '1/4 ' : ''}Python venv with ${readFileSync(reqFile, 'utf8').trim()} (first time: downloads ~600 MB from PyPI)`);
let venv;
try {
  venv = execFileSync('bash', [join(root, 'scripts', 'py-venv.sh'), cuda ? 'native-cuda' : 'native-cpu', reqFile], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
} catch (e) {
  fail(`pip could not install TensorFlow (${e.message.split('\n')[0]})`);
}
const libDir = join(venv, 'lib');
const py = readdirSync(libDir).find((d) => d.startsWith('python3'));
const tfDir = py && join(libDir, py, 'site-packages', 'tensorflow');
if (!tfDir || !existsSync(join(tfDir, 'libtensorflow_cc.so.2'))) fail(`no libtensorflow_cc.so.2 in ${tfDir}: this TensorFlow wheel does not ship the C library`);
if (!existsSync(join(tfDir, 'include', 'tensorflow', 'c', 'eager', 'c_api.h'))) fail(`the wheel lacks the eager C API header include/tensorflow/c/eager/c_api.h`);
const tfVersion = (readdirSync(join(libDir, py, 'site-packages')).find((d) => /^tensorflow(_cpu)?-[\d.]+\.dist-info$/.test(d)) ?? '').replace(/^tensorflow(_cpu)?-|\.dist-info$/g, '');

// 2. tfjs-node's JavaScript, without its downloading install script.
log(`${install ? '2/4 ' : ''}installing @tensorflow/tfjs-node (JavaScript only, --ignore-scripts) into native/node_modules`);
const npm = spawnSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error'], { cwd: nativeDir, stdio: quiet ? 'ignore' : 'inherit' });
if (npm.status !== 0) fail('npm install in native/ failed');

// 3. Compile the binding against the wheel. binding.gyp links -ltensorflow -ltensorflow_framework
//    from <package>/deps/lib and sets rpath $ORIGIN/../../deps/lib; the wheel names its libraries
//    libtensorflow_cc.so.2 / libtensorflow_framework.so.2, so deps/ holds relative symlinks.
const deps = join(pkgDir, 'deps');
rmSync(deps, { recursive: true, force: true });
mkdirSync(join(deps, 'lib'), { recursive: true });
const link = (target, name) => symlinkSync(relative(dirname(name), target), name);
link(join(tfDir, 'include'), join(deps, 'include'));
for (const [target, names] of [
  ['libtensorflow_cc.so.2', ['libtensorflow.so', 'libtensorflow_cc.so.2']],
  ['libtensorflow_framework.so.2', ['libtensorflow_framework.so', 'libtensorflow_framework.so.2']],
]) {
  for (const n of names) link(join(tfDir, target), join(deps, 'lib', n));
}
// 3a. The binding patches, always onto pristine sources: binding.pristine/ is a copy of the
//     package's binding/ taken before the first patch (a fresh npm install of the package
//     replaces both, and the marker check refuses to take a patched tree as pristine).
const pristine = join(pkgDir, 'binding.pristine');
const bindingDir = join(pkgDir, 'binding');
if (!existsSync(pristine)) {
  if (readdirSync(bindingDir).some((f) => readFileSync(join(bindingDir, f), 'utf8').includes('rass patch'))) {
    fail(`${relative(root, bindingDir)} is already patched and its pristine copy is gone; reinstall it (rm -rf native/node_modules, then npm run setup:native)`);
  }
  cpSync(bindingDir, pristine, { recursive: true });
}
rmSync(bindingDir, { recursive: true, force: true });
cpSync(pristine, bindingDir, { recursive: true });
// A patch that does not apply (another tfjs-node version) costs only the compiled steps: the
// binding is built from pristine sources, and `rass doctor` then says compiled steps are
// unavailable. build-info records `patch: null` (the binding-patch test then fails, naming the patch).
let patchFailure = null;
for (const p of patches) {
  const r = spawnSync('patch', ['-p1', '--forward', '--batch', '--fuzz=0', '--no-backup-if-mismatch', '-i', p], { cwd: pkgDir, encoding: 'utf8' });
  if (r.status !== 0) {
    patchFailure = `patch ${relative(root, p)} does not apply to tfjs-node's binding: ${(r.stdout + r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`;
    break;
  }
}
if (patchFailure) {
  log(`WARNING: ${patchFailure}; building the unpatched binding (no compiled training steps)`);
  rmSync(bindingDir, { recursive: true, force: true });
  cpSync(pristine, bindingDir, { recursive: true });
  want.patch = null;
} else if (patches.length) log(`applied ${patches.map((p) => relative(root, p)).join(', ')} to the binding sources`);
const npmRoot = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
const nodeGyp = [join(npmRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].find(existsSync);
if (!nodeGyp) fail('node-gyp not found (it ships with npm)');
const nodeDir = [process.env.npm_config_nodedir, resolve(dirname(process.execPath), '..')].find((d) => d && existsSync(join(d, 'include', 'node', 'node_api.h')));
if (!nodeDir) fail('Node headers (include/node/node_api.h) not found next to the node binary; install the nodejs headers package');
log(`${install ? '3/4 ' : ''}compiling tfjs_binding with node-gyp (headers ${nodeDir}/include/node, TensorFlow ${tfVersion} at ${relative(root, tfDir)})`);
const gyp = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodeDir}`, '-j', '2', '--module_name=tfjs_binding', '--module_path=lib/napi-v8', '--napi_build_version=8'], { cwd: pkgDir, stdio: quiet ? 'ignore' : 'inherit' });
if (gyp.status !== 0) fail(quiet ? 'node-gyp build failed' : 'node-gyp build failed (see the compiler output above)');
mkdirSync(dirname(bindingOut), { recursive: true });
if (!existsSync(bindingOut) || lstatSync(bindingOut).mtimeMs < lstatSync(join(pkgDir, 'build', 'Release', 'tfjs_binding.node')).mtimeMs) {
  copyFileSync(join(pkgDir, 'build', 'Release', 'tfjs_binding.node'), bindingOut);
}

// 3b. rass's own kernels.
const opsWhy = buildOps(tfDir);
reportOps(opsWhy);

// 4. Check it.
if (install) log('4/4 checking that the backend loads');
const v = verify();
if (!v.ok) fail(`the built backend does not load: ${v.why}`);
writeFileSync(infoFile, JSON.stringify({ ...want, ops: opsWhy ? null : opsKey, tensorflow: tfVersion, venv: relative(root, venv), builtAt: new Date().toISOString() }, null, 2) + '\n');
log(`done: backend "${v.backend}" (TensorFlow ${tfVersion}, tfjs ${v.tf}); 512x512 matmul ${v.gflops} GFLOP/s. The backend chain now picks it up automatically.`);
