/**
 * `npm run bench -- <area> [args...]`: runs bench/<area>.js (compiled), whose exported
 * `run(args)` prints a table and ends with `BENCH <id> <value> <unit> peer=<name> <v> ratio=<r>` lines.
 * With no area, runs every benchmark in turn.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const areas = readdirSync(here)
  .filter((f) => f.endsWith('.js') && !['run.js'].includes(f) && !f.startsWith('_'))
  .map((f) => f.replace(/\.js$/, ''))
  .sort();
const [area, ...rest] = process.argv.slice(2);
const chosen = area ? [area] : areas;
for (const a of chosen) {
  if (!areas.includes(a)) {
    console.error(`unknown benchmark "${a}"; available: ${areas.join(', ') || '(none yet)'}`);
    process.exit(2);
  }
  console.log(`\n=== bench: ${a} ===`);
  const mod = (await import(pathToFileURL(join(here, `${a}.js`)).href)) as { run(args: string[]): Promise<void> };
  await mod.run(rest);
}
