import { it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromiumFlags, chromiumPath, runProcess } from '../../helpers/chromium.js';

// Opens a real sweep report in headless Chromium (Debian's package, installed by
// scripts/chromium/setup.sh) and checks the rendered DOM: the trials table and the charts.
const bin = join(process.cwd(), 'dist', 'bin', 'rass.js');



it('a sweep report renders in headless Chromium: table rows and one chart per axis', async (t) => {
  const chromium = chromiumPath();
  if (!chromium) {
    console.log('CHROMIUM TEST SKIPPED (RASS_SKIP_CHROMIUM=1)');
    t.skip('RASS_SKIP_CHROMIUM=1');
    return;
  }
  const runs = mkdtempSync(join(tmpdir(), 'sweep-chromium-'));
  const s = await runProcess(process.execPath, [bin, 'sweep', 'configs/toy/lr-hidden-sweep.yaml', '--set', `runs_dir=${runs}`, '--set', 'experiment.steps=20', '--set', 'sweep.repeats=1', '--max-parallel', '2']);
  assert.equal(s.code, 0, s.err + s.out);
  const parentDir = join(runs, 'toy-lr-hidden', readdirSync(join(runs, 'toy-lr-hidden'))[0]);
  const html = join(parentDir, 'artifacts', 'report.html');
  const profile = mkdtempSync(join(tmpdir(), 'chromium-profile-'));
  const flags = chromiumFlags(profile);
  const dom = await runProcess(chromium, [...flags, '--dump-dom', `file://${html}`]);
  assert.equal(dom.code, 0, dom.err);
  // the rendered DOM (after parsing, as the browser sees it)
  assert.match(dom.out, /<table id="trials">/);
  assert.equal((dom.out.match(/<tr><td class="id">/g) ?? []).length, 4, 'one row per trial');
  const svgs = dom.out.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
  assert.equal(svgs.length, 2, 'one chart per ablation axis');
  for (const svg of svgs) assert.equal((svg.match(/<rect class="bar"/g) ?? []).length, 2);
  const png = join(profile, 'report.png');
  const shot = await runProcess(chromium, [...flags, '--window-size=1100,800', `--screenshot=${png}`, `file://${html}`]);
  assert.equal(shot.code, 0, shot.err);
  assert.ok(existsSync(png) && statSync(png).size > 10_000, 'a non-trivial screenshot');
});
