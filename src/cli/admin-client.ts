import { setTimeout as delay } from 'node:timers/promises';
import type { z } from 'zod';
import { Headers } from '../protocol/constants.js';
import { errorAnswerSchema } from '../protocol/error-answer.js';
import { ErrorCodes, SynclineError, type ErrorCode } from '../protocol/errors.js';
import { firstIssue } from '../transport/http-util.js';

export interface RequestOptions {
  /**
   * Sent as Idempotency-Key. The server answers a repeated key with its first
   * answer, so a request carrying one is retried after a lost connection or a
   * server fault without the risk of acting twice.
   */
  idempotencyKey?: string;
}

const ATTEMPTS_WITH_KEY = 3;
const RETRY_DELAY_MS = 250;

/**
 * A thin client of the admin HTTP API: an answer is read with its schema from
 * protocol/admin-answers.ts, the server's error body (errorAnswerSchema) becomes
 * a SynclineError.
 */
export class AdminClient {
  readonly #base: string;
  readonly #token: string;

  constructor(serverUrl: string, adminToken: string) {
    this.#base = serverUrl.replace(/\/+$/, '');
    this.#token = adminToken;
  }

  /**
   * The answer after it matched `schema`. It is the body itself, not the parsed
   * copy: zod objects drop fields they do not name, and --json prints the whole
   * answer, fields a newer server adds included. Hence z.input, the type of what
   * the schema accepts, which is what the body was shown to be.
   */
  async request<S extends z.ZodType>(method: 'GET' | 'POST', path: string, schema: S, body?: unknown, options: RequestOptions = {}): Promise<z.input<S>> {
    const attempts = options.idempotencyKey === undefined ? 1 : ATTEMPTS_WITH_KEY;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#once(method, path, schema, body, options);
      } catch (error) {
        const retryable = error instanceof SynclineError && error.status >= 500;
        if (!retryable || attempt >= attempts) throw error;
        await delay(RETRY_DELAY_MS * attempt);
      }
    }
  }

  async #once<S extends z.ZodType>(method: 'GET' | 'POST', path: string, schema: S, body: unknown, options: RequestOptions): Promise<z.input<S>> {
    const headers: Record<string, string> = { [Headers.authorization]: `Bearer ${this.#token}` };
    if (body !== undefined) headers[Headers.contentType] = 'application/json';
    if (options.idempotencyKey !== undefined) headers[Headers.idempotencyKey] = options.idempotencyKey;
    let response: Response;
    try {
      response = await fetch(`${this.#base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new SynclineError('transport_failed', `cannot reach the server at ${this.#base}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      throw new SynclineError('transport_failed', `${this.#base} answered ${response.status} with something other than JSON; is it a syncline server?`, { status: response.status });
    }
    if (!response.ok) throw refusal(response, parsed, text, `${method} ${path}`);
    assertAnswer(schema, parsed, `${this.#base} answered ${method} ${path} with ${response.status}`, response.status);
    return parsed;
  }
}

const isErrorCode = (code: string): code is ErrorCode => Object.hasOwn(ErrorCodes, code);

const QUOTED_BODY_CHARS = 200;

/** A non-2xx answer as a SynclineError: the server's code and message when the body is ours, else its status and the start of the body. */
function refusal(response: Response, body: unknown, text: string, request: string): SynclineError {
  const status = { status: response.status };
  const ours = errorAnswerSchema.safeParse(body);
  if (!ours.success) {
    const quoted = text ? `: ${text.slice(0, QUOTED_BODY_CHARS)}` : '';
    return new SynclineError('internal', `${request} answered ${`${response.status} ${response.statusText}`.trim()}${quoted}`, status);
  }
  const { error, message, context } = ours.data;
  // A code this CLI does not know (a newer server's) still says what it was.
  if (!isErrorCode(error)) return new SynclineError('internal', `${message} (${error})`, { ...context, ...status });
  return new SynclineError(error, message, { ...context, ...status });
}

/** A 2xx body that is not the answer its route declares is a version mismatch or another server: one clear error, never a half-read answer. */
function assertAnswer<S extends z.ZodType>(schema: S, body: unknown, answered: string, status: number): asserts body is z.input<S> {
  const checked = schema.safeParse(body);
  if (!checked.success) throw new SynclineError('transport_failed', `${answered} and an unexpected body: ${firstIssue(checked.error)}; is it a syncline server of the same version?`, { status });
}
