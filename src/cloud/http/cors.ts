import type { FastifyInstance } from 'fastify';
import { SynclineError } from '../../protocol/errors.js';

/** Any origin: safe here because every credential is a bearer header a page must hold, never a cookie. */
export const ANY_ORIGIN = '*';
/** How long a browser may reuse a preflight answer. */
const PREFLIGHT_MAX_AGE_S = 600;
const METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';

/**
 * The origins a setting names (repeatable, each a comma list), checked: each is `*` or an origin
 * exactly as a browser sends it (scheme://host[:port], no path or trailing slash), since the
 * Origin header is compared as is.
 */
export function parseCorsOrigins(values: readonly string[]): string[] {
  const origins = values.flatMap((value) => value.split(',')).map((origin) => origin.trim()).filter((origin) => origin !== '');
  for (const origin of origins) {
    if (origin === ANY_ORIGIN) continue;
    let normal: string | undefined;
    try {
      normal = new URL(origin).origin;
    } catch {
      normal = undefined;
    }
    if (normal !== origin) {
      throw new SynclineError('invalid_config', `--cors-origin "${origin}" is not an origin: give scheme://host[:port] as the browser shows it (e.g. https://app.example.com), without a path or trailing slash, or * for any`, { field: 'cors-origin' });
    }
  }
  return origins;
}

/**
 * Lets browser apps served from `origins` call the API (opt-in: with none, browsers keep
 * other origins out as before). A root onRequest hook, so it covers every route and answers
 * preflights (OPTIONS) of routes that have no OPTIONS handler.
 */
export function allowCrossOrigin(app: FastifyInstance, origins: readonly string[]): void {
  if (origins.length === 0) return;
  const any = origins.includes(ANY_ORIGIN);
  const allowed = new Set(origins);
  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin;
    if (origin === undefined || !(any || allowed.has(origin))) return;
    reply.header('access-control-allow-origin', any ? ANY_ORIGIN : origin);
    // Answers differ by Origin: caches must not hand one origin's answer to another.
    if (!any) reply.header('vary', 'Origin');
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      reply.header('access-control-allow-methods', METHODS);
      // Whatever headers the page asks to send (authorization, content-type, idempotency-key, ...): the routes check them.
      const asked = request.headers['access-control-request-headers'];
      if (asked) reply.header('access-control-allow-headers', asked);
      reply.header('access-control-max-age', String(PREFLIGHT_MAX_AGE_S));
      return reply.code(204).send();
    }
    return undefined;
  });
}
