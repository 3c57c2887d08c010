/**
 * Credentials must never reach a log line, an error message or a run file. Every message the
 * MLflow code builds passes through a Redactor that knows the secrets in play.
 */
export class Redactor {
  private readonly secrets: string[];

  constructor(secrets: Iterable<string | undefined>) {
    // Longest first, so a secret that contains another is replaced whole.
    this.secrets = [...new Set([...secrets].filter((s): s is string => typeof s === 'string' && s.length >= 3))].sort((a, b) => b.length - a.length);
    for (const s of [...this.secrets]) {
      // A Basic header carries base64(user:password); URL-encoded forms show up in URIs.
      const enc = encodeURIComponent(s);
      if (enc !== s) this.secrets.push(enc);
    }
  }

  /** Add the base64 form of a Basic credential so a leaked header value is caught too. */
  addSecret(s: string): void {
    if (s.length >= 3 && !this.secrets.includes(s)) this.secrets.push(s);
    this.secrets.sort((a, b) => b.length - a.length);
  }

  redact(text: string): string {
    let out = text.replace(/(authorization["']?\s*[:=]\s*["']?)(basic|bearer)?\s*[^\s"',}]+/giu, (_m, head: string, scheme?: string) => `${head}${scheme ? scheme + ' ' : ''}[REDACTED]`);
    out = out.replace(/(\/\/)[^/@\s:]+:[^/@\s]+@/gu, '$1[REDACTED]@');
    for (const s of this.secrets) out = out.split(s).join('[REDACTED]');
    return out;
  }
}

/** The URI without user:password@ (the form that may be shown or stored). */
export function stripCredentials(uri: string): string {
  try {
    const u = new URL(uri);
    if (!u.username && !u.password) return uri.replace(/\/+$/u, '');
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/+$/u, '');
  } catch {
    return uri.replace(/\/\/[^/@]*@/u, '//').replace(/\/+$/u, '');
  }
}
