/**
 * MLflow's server-side limits (mlflow/utils/validation.py, MLflow 2.x/3.x). Everything the
 * tracker sends is checked against them here first, so a long value or a bad key is
 * truncated or dropped with a message on our side instead of a 400 from the server mid-run.
 */
export const MLFLOW_LIMITS = {
  metricsPerBatch: 1000,
  paramsPerBatch: 100,
  tagsPerBatch: 100,
  /** metrics + params + tags in one log-batch call */
  entitiesPerBatch: 1000,
  /** bytes of one log-batch request body (the server rejects more than 1 MB) */
  requestBytes: 1_000_000,
  keyLength: 250,
  paramValueLength: 6000,
  tagValueLength: 8000,
  datasetNameLength: 500,
  datasetDigestLength: 36,
  datasetSourceLength: 65535,
} as const;

// MLflow accepts alphanumerics, underscores, dashes, periods, spaces, colons and slashes in keys.
const KEY_PATTERN = /^[/\w.\- :]*$/u;

/** Why a metric/param/tag key would be refused by MLflow, or undefined when it is fine. */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'is empty';
  if (key.length > MLFLOW_LIMITS.keyLength) return `is ${key.length} characters long (MLflow allows ${MLFLOW_LIMITS.keyLength})`;
  if (!KEY_PATTERN.test(key)) return 'contains characters MLflow does not allow (use letters, digits, _ - . space : /)';
  // MLflow stores keys as paths: posix-normalising them must not change them.
  if (key.startsWith('/') || key.endsWith('/') || key.includes('//') || key.split('/').some((part) => part === '..' || part === '.')) return 'is not a clean relative path (no leading/trailing/double slash, no . or ..)';
  return undefined;
}

export const TRUNCATION_MARK = '...[truncated]';

/** Cut `value` to `max` characters, ending with a visible mark, or return it unchanged. */
export function truncateValue(value: string, max: number): { value: string; truncated: boolean } {
  if (value.length <= max) return { value, truncated: false };
  return { value: value.slice(0, max - TRUNCATION_MARK.length) + TRUNCATION_MARK, truncated: true };
}
