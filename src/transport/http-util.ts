import { SynclineError } from '../protocol/errors.js';

/** `${server}${route}`, keeping any path prefix of the server URL (a reverse proxy may mount us under one). */
export function endpoint(serverUrl: string, route: string): string {
  let base: URL;
  try {
    base = new URL(serverUrl);
  } catch {
    throw new SynclineError('invalid_config', `server URL is not a URL: ${serverUrl}`, { field: 'server' });
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new SynclineError('invalid_config', `server URL must be http or https: ${serverUrl}`, { field: 'server' });
  }
  return `${base.origin}${base.pathname.replace(/\/+$/, '')}${route}`;
}

export function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function retryAfter(response: Response): { retryAfterMs?: number } {
  const header = response.headers.get('retry-after');
  if (!header) return {};
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return { retryAfterMs: seconds * 1000 };
  const at = Date.parse(header);
  return Number.isNaN(at) ? {} : { retryAfterMs: Math.max(0, at - Date.now()) };
}
