/**
 * A small typed MLflow REST client (fetch-based). npm has no maintained MLflow client, so the
 * project owns this one; it covers what the tracker and the tests need: experiments, runs,
 * log-batch, log-inputs, metric history and artifacts through the server's artifact proxy.
 *
 * Retries: network errors, 408, 429 and 5xx are retried with exponential backoff, honouring
 * Retry-After. Auth: Basic from MLFLOW_TRACKING_USERNAME/PASSWORD or user:pass@ in the URI,
 * Bearer from MLFLOW_TRACKING_TOKEN. No message this client builds contains a credential.
 */
import { MLFLOW_LIMITS } from './limits.js';
import { Redactor, stripCredentials } from './redact.js';

export interface RetryPolicy {
  /** total attempts per request, including the first */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 6, baseDelayMs: 250, maxDelayMs: 10_000 };

export interface MlflowClientOptions {
  /** http(s)://host:port[/prefix]; user:password@ in it is used as Basic auth and never shown */
  uri: string;
  username?: string;
  password?: string;
  token?: string;
  retry?: Partial<RetryPolicy>;
  /** per-attempt timeout */
  requestTimeoutMs?: number;
  /** injectable for tests */
  fetch?: typeof fetch;
  /** called before each retry wait (for logs); the message is already redacted */
  onRetry?: (message: string) => void;
}

/** Build client options from the standard MLflow environment variables. */
export function clientOptionsFromEnv(uri: string, env: Record<string, string | undefined>): MlflowClientOptions {
  return {
    uri,
    username: env.MLFLOW_TRACKING_USERNAME || undefined,
    password: env.MLFLOW_TRACKING_PASSWORD || undefined,
    token: env.MLFLOW_TRACKING_TOKEN || undefined,
  };
}

export interface MlflowMetric {
  key: string;
  value: number;
  timestamp: number;
  step: number;
}
export interface KeyValue {
  key: string;
  value: string;
}
export interface MlflowRunInfo {
  run_id: string;
  run_name?: string;
  experiment_id: string;
  user_id?: string;
  status: string;
  start_time?: number;
  end_time?: number;
  artifact_uri: string;
  lifecycle_stage: string;
}
export interface MlflowRun {
  info: MlflowRunInfo;
  data: { metrics?: MlflowMetric[]; params?: KeyValue[]; tags?: KeyValue[] };
  inputs?: { dataset_inputs?: Array<{ tags?: KeyValue[]; dataset: MlflowDataset }> };
}
export interface MlflowExperiment {
  experiment_id: string;
  name: string;
  artifact_location?: string;
  lifecycle_stage: string;
}
export interface MlflowDataset {
  name: string;
  digest: string;
  source_type: string;
  source: string;
  schema?: string;
  profile?: string;
}
export interface MlflowFileInfo {
  path: string;
  is_dir: boolean;
  file_size?: number;
}

/** An MLflow API error with the HTTP status and MLflow's error_code (messages are redacted). */
export class MlflowHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errorCode: string | undefined,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'MlflowHttpError';
  }
}

/** Wait `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((r) => {
    if (signal.aborted) return r();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      r();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), if present and sane. */
export function parseRetryAfter(h: string | null, now = Date.now()): number | undefined {
  if (!h) return undefined;
  const secs = Number(h);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const date = Date.parse(h);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

/** Encode a metric value the way MLflow's protobuf JSON parser wants non-finite doubles. */
function jsonMetricValue(v: number | null): number | string {
  if (v === null || Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return v;
}

export class MlflowClient {
  /** the tracking URI without credentials */
  readonly uri: string;
  readonly redactor: Redactor;
  private readonly base: string;
  private readonly authHeader: string | undefined;
  private readonly retry: RetryPolicy;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly onRetry?: (message: string) => void;
  private aborter = new AbortController();

  constructor(opts: MlflowClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.uri);
    } catch {
      throw new Error(`MLflow tracking URI is not a URL: ${stripCredentials(opts.uri)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`MLflow tracking URI must be http(s)://, got ${url.protocol} (${stripCredentials(opts.uri)})`);
    }
    const username = opts.username ?? (url.username ? decodeURIComponent(url.username) : undefined);
    const password = opts.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
    this.uri = stripCredentials(opts.uri);
    this.base = this.uri;
    this.redactor = new Redactor([opts.password, opts.token, password, url.password]);
    if (opts.token) {
      this.authHeader = `Bearer ${opts.token}`;
    } else if (username !== undefined && password !== undefined) {
      const b64 = Buffer.from(`${username}:${password}`).toString('base64');
      this.redactor.addSecret(b64);
      this.authHeader = `Basic ${b64}`;
    }
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.fetchImpl = opts.fetch ?? fetch;
    this.onRetry = opts.onRetry;
  }

  // ---------------------------------------------------------------- transport

  /**
   * Abandon the requests (and retry waits) in flight now; they fail as retryable network
   * errors, so nothing is acknowledged and shipping can resume later. The client stays usable.
   */
  abortPending(): void {
    this.aborter.abort();
    this.aborter = new AbortController();
  }

  /** One HTTP exchange with retries; returns the response body as a Buffer. */
  private async request(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown, raw?: Uint8Array): Promise<Buffer> {
    const url = this.base + path;
    const headers: Record<string, string> = {};
    if (this.authHeader) headers.Authorization = this.authHeader;
    let payload: Uint8Array | string | undefined;
    if (raw) {
      payload = raw;
      headers['Content-Type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    let lastError: MlflowHttpError | undefined;
    const abort = this.aborter.signal;
    for (let attempt = 1; attempt <= this.retry.maxAttempts; attempt++) {
      let waitMs: number | undefined;
      if (abort.aborted) break;
      try {
        const res = await this.fetchImpl(url, { method, headers, body: payload, signal: AbortSignal.any([abort, AbortSignal.timeout(this.timeoutMs)]) });
        const buf = Buffer.from(await res.arrayBuffer());
        if (res.ok) return buf;
        const text = buf.toString('utf8');
        let errorCode: string | undefined;
        let message = text.slice(0, 500);
        try {
          const j = JSON.parse(text) as { error_code?: string; message?: string };
          errorCode = j.error_code;
          if (j.message) message = j.message;
        } catch {
          /* not JSON: keep the text */
        }
        const retryable = isRetryableStatus(res.status);
        lastError = new MlflowHttpError(
          this.redactor.redact(`MLflow ${method} ${path.split('?')[0]} -> HTTP ${res.status}${errorCode ? ` ${errorCode}` : ''}: ${message}`),
          res.status,
          errorCode,
          retryable,
        );
        if (!retryable) throw lastError;
        waitMs = parseRetryAfter(res.headers.get('retry-after'));
      } catch (e) {
        if (e instanceof MlflowHttpError && !e.retryable) throw e;
        if (!(e instanceof MlflowHttpError)) {
          const cause = (e as { cause?: { code?: string; message?: string } }).cause;
          const why = cause?.code ?? cause?.message ?? (e as Error).message ?? String(e);
          lastError = new MlflowHttpError(this.redactor.redact(`MLflow ${method} ${path.split('?')[0]} at ${this.uri}: network error (${why})`), 0, undefined, true);
        }
      }
      if (attempt === this.retry.maxAttempts || abort.aborted) break;
      const backoff = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
      const delay = Math.min(this.retry.maxDelayMs, Math.max(backoff, waitMs ?? 0));
      this.onRetry?.(`${lastError!.message}; retry ${attempt}/${this.retry.maxAttempts - 1} in ${delay} ms`);
      await sleep(delay, abort);
    }
    if (abort.aborted) throw new MlflowHttpError(`MLflow ${method} ${path.split('?')[0]} at ${this.uri}: abandoned (tracker closed)`, 0, undefined, true);
    throw lastError!;
  }

  private async json<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const buf = await this.request(method, path, body);
    return (buf.length ? JSON.parse(buf.toString('utf8')) : {}) as T;
  }

  // ---------------------------------------------------------------- experiments

  async getExperimentByName(name: string): Promise<MlflowExperiment | undefined> {
    try {
      const r = await this.json<{ experiment: MlflowExperiment }>('GET', `/api/2.0/mlflow/experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`);
      return r.experiment;
    } catch (e) {
      if (e instanceof MlflowHttpError && (e.status === 404 || e.errorCode === 'RESOURCE_DOES_NOT_EXIST')) return undefined;
      throw e;
    }
  }

  async createExperiment(name: string): Promise<string> {
    const r = await this.json<{ experiment_id: string }>('POST', '/api/2.0/mlflow/experiments/create', { name });
    return r.experiment_id;
  }

  /** The experiment's id, creating it when missing; safe when two processes race to create it. */
  async getOrCreateExperiment(name: string): Promise<string> {
    const found = await this.getExperimentByName(name);
    if (found) {
      if (found.lifecycle_stage === 'deleted') {
        throw new Error(`MLflow experiment "${name}" is deleted on ${this.uri}; restore it or pick another tracking.mlflow.experiment_name`);
      }
      return found.experiment_id;
    }
    try {
      return await this.createExperiment(name);
    } catch (e) {
      // Another process created it between our lookup and our create.
      if (e instanceof MlflowHttpError && e.errorCode === 'RESOURCE_ALREADY_EXISTS') {
        const again = await this.getExperimentByName(name);
        if (again) return again.experiment_id;
      }
      throw e;
    }
  }

  // ---------------------------------------------------------------- runs

  async createRun(args: { experimentId: string; runName?: string; startTime?: number; tags?: KeyValue[]; userId?: string }): Promise<MlflowRunInfo> {
    const r = await this.json<{ run: MlflowRun }>('POST', '/api/2.0/mlflow/runs/create', {
      experiment_id: args.experimentId,
      run_name: args.runName,
      start_time: args.startTime,
      user_id: args.userId,
      tags: args.tags ?? [],
    });
    return r.run.info;
  }

  async updateRun(args: { runId: string; status?: string; endTime?: number; runName?: string }): Promise<void> {
    await this.json('POST', '/api/2.0/mlflow/runs/update', { run_id: args.runId, status: args.status, end_time: args.endTime, run_name: args.runName });
  }

  async getRun(runId: string): Promise<MlflowRun> {
    const r = await this.json<{ run: MlflowRun }>('GET', `/api/2.0/mlflow/runs/get?run_id=${encodeURIComponent(runId)}`);
    return r.run;
  }

  async searchRuns(args: { experimentIds: string[]; filter?: string; maxResults?: number; orderBy?: string[]; pageToken?: string }): Promise<{ runs: MlflowRun[]; nextPageToken?: string }> {
    const r = await this.json<{ runs?: MlflowRun[]; next_page_token?: string }>('POST', '/api/2.0/mlflow/runs/search', {
      experiment_ids: args.experimentIds,
      filter: args.filter,
      max_results: args.maxResults ?? 1000,
      order_by: args.orderBy,
      page_token: args.pageToken,
    });
    return { runs: r.runs ?? [], nextPageToken: r.next_page_token || undefined };
  }

  /** Every run matching the filter (follows page tokens). */
  async searchAllRuns(experimentIds: string[], filter?: string): Promise<MlflowRun[]> {
    const out: MlflowRun[] = [];
    let pageToken: string | undefined;
    do {
      const page = await this.searchRuns({ experimentIds, filter, pageToken });
      out.push(...page.runs);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return out;
  }

  /**
   * One log-batch call. The caller (BatchBuilder) keeps it within MLflow's limits; this only
   * re-checks the counts so a bug shows up here and not as a server 400.
   */
  async logBatch(runId: string, batch: { metrics?: Array<Omit<MlflowMetric, 'value'> & { value: number | null }>; params?: KeyValue[]; tags?: KeyValue[] }): Promise<void> {
    const m = batch.metrics ?? [];
    const p = batch.params ?? [];
    const t = batch.tags ?? [];
    if (m.length > MLFLOW_LIMITS.metricsPerBatch || p.length > MLFLOW_LIMITS.paramsPerBatch || t.length > MLFLOW_LIMITS.tagsPerBatch || m.length + p.length + t.length > MLFLOW_LIMITS.entitiesPerBatch) {
      throw new Error(`log-batch over MLflow's limits (${m.length} metrics, ${p.length} params, ${t.length} tags)`);
    }
    await this.json('POST', '/api/2.0/mlflow/runs/log-batch', {
      run_id: runId,
      metrics: m.map((x) => ({ key: x.key, value: jsonMetricValue(x.value), timestamp: x.timestamp, step: x.step })),
      params: p,
      tags: t,
    });
  }

  async setTag(runId: string, key: string, value: string): Promise<void> {
    await this.json('POST', '/api/2.0/mlflow/runs/set-tag', { run_id: runId, key, value });
  }

  async logInputs(runId: string, datasets: Array<{ dataset: MlflowDataset; tags?: KeyValue[] }>): Promise<void> {
    await this.json('POST', '/api/2.0/mlflow/runs/log-inputs', { run_id: runId, datasets });
  }

  /** All points of one metric (follows page tokens). */
  async getMetricHistory(runId: string, key: string): Promise<MlflowMetric[]> {
    const out: MlflowMetric[] = [];
    let pageToken: string | undefined;
    do {
      const q = `run_id=${encodeURIComponent(runId)}&metric_key=${encodeURIComponent(key)}&max_results=25000${pageToken ? `&page_token=${encodeURIComponent(pageToken)}` : ''}`;
      const r = await this.json<{ metrics?: MlflowMetric[]; next_page_token?: string }>('GET', `/api/2.0/mlflow/metrics/get-history?${q}`);
      out.push(...(r.metrics ?? []));
      pageToken = r.next_page_token || undefined;
    } while (pageToken);
    return out;
  }

  // ---------------------------------------------------------------- artifacts (server proxy)

  /** The proxy path of a run's artifact root, from its artifact_uri (mlflow-artifacts:/<exp>/<run>/artifacts). */
  private proxyPath(artifactUri: string, relPath: string): string {
    if (!artifactUri.startsWith('mlflow-artifacts:')) {
      throw new Error(`run artifact URI ${artifactUri} is not served by the tracking server's artifact proxy; start the server with --serve-artifacts (the tracker only uploads through the proxy)`);
    }
    const root = new URL(artifactUri).pathname.replace(/^\/+|\/+$/gu, '');
    const rel = relPath.split('/').filter(Boolean).map(encodeURIComponent).join('/');
    return `/api/2.0/mlflow-artifacts/artifacts/${root.split('/').map(encodeURIComponent).join('/')}${rel ? '/' + rel : ''}`;
  }

  async uploadArtifact(artifactUri: string, relPath: string, data: Uint8Array): Promise<void> {
    await this.request('PUT', this.proxyPath(artifactUri, relPath), undefined, data);
  }

  async downloadArtifact(artifactUri: string, relPath: string): Promise<Buffer> {
    return this.request('GET', this.proxyPath(artifactUri, relPath));
  }

  async listArtifacts(runId: string, path?: string): Promise<MlflowFileInfo[]> {
    const q = `run_id=${encodeURIComponent(runId)}${path ? `&path=${encodeURIComponent(path)}` : ''}`;
    const r = await this.json<{ files?: MlflowFileInfo[] }>('GET', `/api/2.0/mlflow/artifacts/list?${q}`);
    return r.files ?? [];
  }
}
