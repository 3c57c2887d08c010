/**
 * The registry layout: registry/<kind>/<name>/ for every plugin. Each folder of a kind (other
 * than common/, the kind's shared code, and commands/, its CLI commands) holds the plugin
 * module(s) `plugin.ts` (or `*-plugin.ts` / `plugins.ts`); every plugin those modules export is
 * listed in the kind's index.ts, and every plugin index.ts lists comes from a folder. A folder is
 * named after one of its plugins unless it is a family listed below with the reason.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AnyPlugin } from '../../../framework/api.js';

const SRC = join(process.cwd(), 'registry');
const DIST = join(process.cwd(), 'dist', 'registry');
const KIND_FOLDERS = ['adapters', 'backbones', 'datasets', 'degradations', 'heads', 'losses', 'metrics', 'taggers'];
const SHARED = new Set(['common', 'commands']);

/** Folders that hold a family of plugins sharing code, under a name that is none of theirs. */
const FAMILIES: Record<string, string> = {
  'degradations/kernels': 'blur and sinc draw kernels with the same sampler',
  'degradations/jpeg': 'diffjpeg and jpeg-sharp: two JPEG implementations',
  'degradations/basic': 'clamp and round: one-line value ops',
  'degradations/sharpen': 'usm, the unsharp mask',
  'backbones/sd': 'the Stable Diffusion components (unet2d-condition, autoencoder-kl, clip-text, one-step) share layers and weight loading',
};

const isPlugin = (v: unknown): v is AnyPlugin => typeof v === 'object' && v !== null && 'kind' in v && 'name' in v && 'create' in v && 'schema' in v;
const dirs = (p: string) => readdirSync(p, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

describe('registry/<kind>/<name>/ layout', () => {
  it('registry/ holds only kind folders (each with an index.ts)', () => {
    assert.deepEqual(dirs(SRC), KIND_FOLDERS);
    for (const k of KIND_FOLDERS) assert.ok(readdirSync(join(SRC, k)).includes('index.ts'), `registry/${k}/index.ts is missing`);
  });

  for (const kind of KIND_FOLDERS) {
    it(`registry/${kind}: every plugin folder is listed in index.ts and every listed plugin has a folder`, async () => {
      const listed = ((await import(pathToFileURL(join(DIST, kind, 'index.js')).href)) as { plugins: readonly AnyPlugin[] }).plugins;
      const fromFolders = new Map<AnyPlugin, string>();
      for (const folder of dirs(join(SRC, kind)).filter((d) => !SHARED.has(d))) {
        const modules = readdirSync(join(SRC, kind, folder)).filter((f) => /^(plugin|plugins|.+-plugin)\.ts$/.test(f));
        assert.ok(modules.length > 0, `registry/${kind}/${folder}/ has no plugin.ts (shared code belongs in registry/${kind}/common/)`);
        const exported: AnyPlugin[] = [];
        for (const m of modules) {
          const mod = (await import(pathToFileURL(join(DIST, kind, folder, m.replace(/\.ts$/, '.js'))).href)) as Record<string, unknown>;
          exported.push(...Object.values(mod).filter(isPlugin));
        }
        assert.ok(exported.length > 0, `registry/${kind}/${folder}/: its plugin module exports no plugin`);
        for (const p of exported) {
          assert.ok(listed.includes(p), `${p.kind}/${p.name} (registry/${kind}/${folder}/) is not listed in registry/${kind}/index.ts`);
          fromFolders.set(p, folder);
        }
        const names = exported.map((p) => p.name);
        assert.ok(names.includes(folder) || `${kind}/${folder}` in FAMILIES, `registry/${kind}/${folder}/ is named after none of its plugins (${names.join(', ')}); rename it or list it as a family`);
      }
      for (const p of listed) assert.ok(fromFolders.has(p), `${p.kind}/${p.name} is listed in registry/${kind}/index.ts but defined in no registry/${kind}/<name>/ plugin module`);
    });
  }
});
