import { UserError } from '../errors.js';
import { formatOrigin, type Origin } from './origins.js';

export interface ConfigIssue {
  origin?: Origin;
  /** Dotted path of the offending key, e.g. `experiment.optimizer.lr` ('' for the file itself). */
  path: string;
  message: string;
}

/** `file:line:col path: message (via child.yaml)` -- the "via" chain reads best at the end. */
export function formatIssue(i: ConfigIssue): string {
  const where = formatOrigin(i.origin ? { ...i.origin, via: undefined } : undefined);
  const via = i.origin?.via?.length ? ` (via ${formatOrigin({ file: i.origin.via[0] }).trim()}${i.origin.via.length > 1 ? ' <- ' + i.origin.via.slice(1).map((f) => formatOrigin({ file: f })).join(' <- ') : ''})` : '';
  const head = [where, i.path].filter(Boolean).join(' ');
  return `${head ? head + ': ' : ''}${i.message}${via}`;
}

/** A config that cannot be used: every issue found, each with file:line:col and path. */
export class ConfigError extends UserError {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.length === 1 ? formatIssue(issues[0]) : `${issues.length} problems in the config:\n  ${issues.map(formatIssue).join('\n  ')}`);
    this.name = 'UserError';
    this.issues = issues;
  }
}
