import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Opens a real sweep report in headless Chromium (Debian's package, installed by
// scripts/chromium/setup.sh) and checks the rendered DOM: the trials table and the charts.
const bin = join(process.cwd(), 'dist', 'bin', 'rass.js');

function chromiumPath(): string | undefined {
  try {
    return execFileSync('bash', [join(process.cwd(), 'scripts/chromium/setup.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 }).trim().split('\n').pop();
  } catch (e) {
    if (process.env.RASS_SKIP_CHROMIUM === '1') return undefined;
    throw new Error(`CHROMIUM UNAVAILABLE: scripts/chromium/setup.sh failed (${(e as Error).message.split('\n')[0]}); set RASS_SKIP_CHROMIUM=1 to skip this test`, { cause: e });
  }
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const c = spawn(cmd, args, { env: { ...process.env, CI: 'true' } });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('exit', (code) => done({ code, out, err }));
  });
}

it('a sweep report renders in headless Chromium: table rows and one chart per axis', async (t) => {
  const chromium = chromiumPath();
  if (!chromium) {
    console.log('CHROMIUM TEST SKIPPED (RASS_SKIP_CHROMIUM=1)');
    t.skip('RASS_SKIP_CHROMIUM=1');
    return;
  }
  const runs = mkdtempSync(join(tmpdir(), 'sweep-chromium-'));
  const s = await run(process.execPath, [bin, 'sweep', 'configs/toy/lr-hidden-sweep.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=20', '--set', 'sweep.repeats=1', '--max-parallel', '2']);
  assert.equal(s.code, 0, s.err + s.out);
  const parentDir = join(runs, 'toy-lr-hidden', readdirSync(join(runs, 'toy-lr-hidden'))[0]);
  const html = join(parentDir, 'artifacts', 'report.html');
  const profile = mkdtempSync(join(tmpdir(), 'chromium-profile-'));
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`];
  const dom = await run(chromium, [...flags, '--dump-dom', `file://${html}`]);
  assert.equal(dom.code, 0, dom.err);
  // the rendered DOM (after parsing, as the browser sees it)
  assert.match(dom.out, /<table id="trials">/);
  assert.equal((dom.out.match(/<tr><td class="id">/g) ?? []).length, 4, 'one row per trial');
  const svgs = dom.out.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
  assert.equal(svgs.length, 2, 'one chart per ablation axis');
  for (const svg of svgs) assert.equal((svg.match(/<rect class="bar"/g) ?? []).length, 2);
  const png = join(profile, 'report.png');
  const shot = await run(chromium, [...flags, '--window-size=1100,800', `--screenshot=${png}`, `file://${html}`]);
  assert.equal(shot.code, 0, shot.err);
  assert.ok(existsSync(png) && statSync(png).size > 10_000, 'a non-trivial screenshot');
});
