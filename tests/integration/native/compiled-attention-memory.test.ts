import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { oneDnnState } from '../../../framework/engine/native-binding.js';
import { compiledSkipReason } from './_native.js';

/**
 * A compiled UNet step keeps the memory the recomputing backward saves. In one TensorFlow graph
 * the memory-efficient attention's recomputed probabilities would be the same expressions as
 * the forward's and run as early (Grappler merges them, the executor runs what is ready): at a
 * 64x64 latent the compiled step then peaked at 1.67 GB against 0.75 GB eager. Gated on each
 * chunk's incoming gradient (framework/engine/recompute-gate.ts) it stays near the eager peak.
 * Peak RSS of a child process, eager recording calls vs compiled calls. Measured with oneDNN
 * on, as TensorFlow runs on CPUs with AVX-512 VNNI/BF16 or AMX: without it TensorFlow's graph
 * runtime takes about 3x the eager step's memory for other reasons (README, memory section).
 */
const dnn = oneDnnState();
const skip = compiledSkipReason() || (dnn.on === true ? false : `oneDNN is not TensorFlow's default here (${dnn.why}); the compiled step's memory is measured with it`);

it('a compiled UNet LoRA step at a 64x64 latent peaks near the eager step, not with every attention chunk held', { skip }, () => {
  const out = execFileSync(process.execPath, [join(process.cwd(), 'dist/tests/integration/native/_attention-memory-child.js')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const r = JSON.parse(out.trim().split('\n').pop() as string) as { eagerPeakMiB: number; grownMiB: number; state: string };
  assert.equal(r.state, 'compiled');
  // with the gate about +0.25 GB over the eager 0.75 GB; without it +0.9 GB
  assert.ok(r.grownMiB < 0.6 * r.eagerPeakMiB, `compiled calls raised the peak by ${r.grownMiB.toFixed(0)} MiB over the eager ${r.eagerPeakMiB.toFixed(0)} MiB`);
});
