import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { UserError, type ComponentNode } from '../../framework/api.js';
import type { Adapter, OneStepRestorer } from '../../framework/api.js';

type Build = <T>(node: ComponentNode, opts: { expectKind: 'backbone' | 'adapter'; path: string }) => Promise<T>;

/**
 * The restorer a finished SCR run trained: its recorded restorer node, with the saved SCR
 * adapter (artifacts/adapters/<name>, PEFT format) loaded and merged (inference only).
 */
export async function loadRestorer(runDir: string, build: Build, where: string): Promise<OneStepRestorer> {
  let e: { restorer: ComponentNode; lora: ComponentNode & { name?: string } };
  try {
    e = (parse(readFileSync(join(runDir, 'config.yaml'), 'utf8')) as { experiment: typeof e }).experiment;
    if (!e.restorer || !e.lora) throw new Error('no experiment.restorer / experiment.lora: not an SCR run');
  } catch (err) {
    throw new UserError(`${where}: ${runDir} is not an SCR run (${(err as Error).message})`);
  }
  const name = e.lora.name ?? 'default';
  const restorer = await build<OneStepRestorer>(e.restorer, { expectKind: 'backbone', path: `${where} (restorer of ${runDir})` });
  try {
    const adapter = await build<Adapter>({ type: 'adapter/lora', name, load: join(runDir, 'artifacts', 'adapters', name) }, { expectKind: 'adapter', path: `${where} (adapter of ${runDir})` });
    adapter.attach(restorer.unet.store);
    adapter.mergeAndUnload();
    return restorer;
  } catch (err) {
    restorer.dispose();
    throw err;
  }
}
