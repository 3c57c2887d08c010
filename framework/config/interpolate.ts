import { ConfigError, type ConfigIssue } from './errors.js';
import type { OriginMap } from './origins.js';
import { formatPath, getAt, isPlainObject, parsePath, type ConfigPath } from './paths.js';

const REF = /\$\{([^}]*)\}/g;
/** Stand-in for an escaped `$${` while references are replaced (a private-use character). */
const ESCAPED = '\uE000';

/**
 * Resolve `${path.to.key}` and `${env:NAME}` / `${env:NAME,default}` in every string, after
 * all merging and overrides (so a reference sees the final value). A string that is exactly
 * one reference takes the referenced value with its type; otherwise the result is a string.
 * `$${` escapes a literal `${`; `${stage:ID}` is left for the pipeline runner. Missing keys, missing variables and cycles are errors that
 * name the reference and where it was written.
 */
export function interpolate(root: Record<string, unknown>, origins: OriginMap, env: Record<string, string | undefined>, missingEnv?: (name: string) => string): void {
  const issues: ConfigIssue[] = [];
  const resolving = new Set<string>();
  const done = new Set<string>();

  const resolveRef = (expr: string): unknown => {
    const e = expr.trim();
    // `${stage:ID}` names a pipeline stage's output: the pipeline resolves it when the stage starts
    if (e.startsWith('stage:')) return `\${${expr}}`;
    if (e.startsWith('env:')) {
      const body = e.slice(4);
      const comma = body.indexOf(',');
      const name = (comma >= 0 ? body.slice(0, comma) : body).trim();
      const v = env[name];
      if (v !== undefined) return v;
      if (comma >= 0) return body.slice(comma + 1);
      if (missingEnv) return missingEnv(name);
      throw new Error(`environment variable ${name} is not set (referenced as \${${expr}}; give a default with \${env:${name},value})`);
    }
    let target: ConfigPath;
    try {
      target = parsePath(e);
    } catch {
      throw new Error(`\${${expr}} is not a config path`);
    }
    const key = JSON.stringify(target);
    if (resolving.has(key)) throw new Error(`interpolation cycle through \${${expr}}`);
    const got = getAt(root, target);
    if (!got.found) throw new Error(`\${${expr}} refers to a key that does not exist`);
    if (!done.has(key)) {
      resolving.add(key);
      try {
        visit(got.value, target, (nv) => setAt(root, target, nv));
      } finally {
        resolving.delete(key);
      }
      done.add(key);
    }
    return structuredClone(getAt(root, target).value);
  };

  const visit = (v: unknown, path: ConfigPath, set: (nv: unknown) => void): void => {
    if (typeof v === 'string') {
      if (!v.includes('${')) return;
      try {
        const whole = /^\$\{([^}]*)\}$/.exec(v);
        if (whole) set(resolveRef(whole[1]));
        else {
          const s = v.replace(/\$\$\{/g, ESCAPED).replace(REF, (_, expr: string) => {
            const r = resolveRef(expr);
            return typeof r === 'string' ? r : JSON.stringify(r);
          });
          set(s.split(ESCAPED).join('${'));
        }
      } catch (e) {
        issues.push({ origin: origins.nearest(path), path: formatPath(path), message: (e as Error).message });
      }
      return;
    }
    if (Array.isArray(v)) v.forEach((x, i) => visit(x, [...path, i], (nv) => (v[i] = nv)));
    else if (isPlainObject(v)) for (const k of Object.keys(v)) visit(v[k], [...path, k], (nv) => (v[k] = nv));
  };

  visit(root, [], () => undefined);
  if (issues.length) throw new ConfigError(issues);
}

function setAt(root: unknown, path: ConfigPath, v: unknown): void {
  let cur = root as Record<string | number, unknown>;
  for (let i = 0; i < path.length - 1; i++) cur = cur[path[i]] as Record<string | number, unknown>;
  cur[path[path.length - 1]] = v;
}
