import type { z } from 'zod';
import { SynclineError } from '../protocol/errors.js';
import { errorAnswerSchema } from '../protocol/lazy-schemas.js';
import { isRetryableStatus, TransportError } from './transport.js';

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

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function retryAfter(response: Response): { retryAfterMs?: number } {
  const header = response.headers.get('retry-after');
  if (!header) return {};
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return { retryAfterMs: seconds * 1000 };
  const at = Date.parse(header);
  return Number.isNaN(at) ? {} : { retryAfterMs: Math.max(0, at - Date.now()) };
}

/** A 2xx body read with the answer's schema: the answer, or why the body is not one (for the error message). */
export function readAnswer<T>(schema: z.ZodType<T>, text: string): { answer: T } | { why: string } {
  const json = parseJson(text);
  if (json === undefined) return { why: 'the body is not JSON' };
  const parsed = schema.safeParse(json);
  return parsed.success ? { answer: parsed.data } : { why: firstIssue(parsed.error) };
}

/** Where and why a body does not match its schema, for a one-line error: `last_seq: expected number`. */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`;
}

/**
 * A non-2xx answer as a TransportError: the server's error code and message when
 * the body is ours (errorAnswerSchema), whether a retry can help, and how long
 * the server asked to wait.
 */
export async function answerError(response: Response, text: string, prefix = ''): Promise<TransportError> {
  const parsed = (await errorAnswerSchema()).safeParse(parseJson(text));
  const code = parsed.success ? parsed.data.error : undefined;
  const message = parsed.success ? parsed.data.message : text.slice(0, 200) || response.statusText;
  return new TransportError(`${prefix}server answered ${response.status}${code ? ` ${code}` : ''}: ${message}`, {
    retryable: isRetryableStatus(response.status),
    status: response.status,
    ...(code === undefined ? {} : { code }),
    ...retryAfter(response),
  });
}
