import { setTimeout as delay } from 'node:timers/promises';
import { Headers } from '../protocol/constants.js';
import { SynclineError, type ErrorCode } from '../protocol/errors.js';

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

/** A thin client of the admin HTTP API; the server's error body becomes a SynclineError. */
export class AdminClient {
  readonly #base: string;
  readonly #token: string;

  constructor(serverUrl: string, adminToken: string) {
    this.#base = serverUrl.replace(/\/+$/, '');
    this.#token = adminToken;
  }

  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    const attempts = options.idempotencyKey === undefined ? 1 : ATTEMPTS_WITH_KEY;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#once<T>(method, path, body, options);
      } catch (error) {
        const retryable = error instanceof SynclineError && error.status >= 500;
        if (!retryable || attempt >= attempts) throw error;
        await delay(RETRY_DELAY_MS * attempt);
      }
    }
  }

  async #once<T>(method: 'GET' | 'POST', path: string, body: unknown, options: RequestOptions): Promise<T> {
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
    if (!response.ok) {
      const e = (parsed ?? {}) as { error?: ErrorCode; message?: string; context?: Record<string, unknown> };
      throw new SynclineError(e.error ?? 'internal', e.message ?? `${method} ${path} answered ${response.status} ${response.statusText}`, { ...(e.context ?? {}), status: response.status });
    }
    return parsed as T;
  }
}
