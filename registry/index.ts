import { pluginPackage, type CommandSpec } from '../framework/api.js';
import { plugins as backbones } from './backbones/index.js';
import { plugins as adapters } from './adapters/index.js';
import { plugins as losses } from './losses/index.js';
import { plugins as degradations } from './degradations/index.js';
import { plugins as metrics } from './metrics/index.js';
import { plugins as heads } from './heads/index.js';
import { plugins as datasets } from './datasets/index.js';
import { plugins as taggers } from './taggers/index.js';
import { degradeCommand } from './degradations/commands/degrade.js';

/** Sub-commands contributed by built-in plugins (e.g. `rass degrade`). */
const commands: CommandSpec[] = [degradeCommand];

/** The built-in component plugins, one folder per kind. */
export const registryPackage = pluginPackage({
  name: 'rass/registry',
  plugins: [...backbones, ...adapters, ...losses, ...degradations, ...metrics, ...heads, ...datasets, ...taggers],
  commands,
});
