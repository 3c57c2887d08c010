import type { ConfigPath } from './paths.js';
import type { Origin, OriginMap } from './origins.js';
import type { CreatedKey } from './overrides.js';

/** A fully resolved config: merged, overridden and interpolated, with every value's origin. */
export interface ResolvedConfig {
  value: Record<string, unknown>;
  /** The entry file (absolute). */
  file: string;
  /** Every file that contributed, entry first. */
  files: string[];
  /** The --set strings, in order. */
  overrides: string[];
  origin(path: ConfigPath): Origin | undefined;
  /** @internal the origin table (for dumps and further overrides) */
  readonly origins: OriginMap;
  /** @internal the merged value before interpolation (applyOverrides re-interpolates from it) */
  readonly raw: Record<string, unknown>;
  readonly env: Record<string, string | undefined>;
  /** The config groups (`_base_/<group>/` folders) its extends chain uses: `--set model=x` selects in them. */
  readonly groups: ReadonlySet<string>;
  /** @internal keys `--set` added that no file defines (validation checks that a schema declares each) */
  readonly created: readonly CreatedKey[];
}
