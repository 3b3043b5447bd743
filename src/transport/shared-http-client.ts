import type { z } from 'zod';
import { Headers, PublisherDefaults } from '../protocol/constants.js';
import { SOURCE_HEADER, SharedRoutes, type PushBegin, type WireRowChange } from '../protocol/shared-sync.js';
import {
  bundleAnnouncementSchema,
  pullAnswerSchema,
  pushAnswerSchema,
  sharedConfigAnswerSchema,
  snapshotAnswerSchema,
  snapshotChunkAnswerSchema,
  type PullAnswer,
  type PushAnswer,
  type SharedConfigAnswer,
  type SnapshotAnswer,
  type SnapshotChunkAnswer,
} from '../protocol/sync-answers.js';
import { answerError, endpoint, errorText, readAnswer } from './http-util.js';
import { TransportError } from './transport.js';

const SNAPSHOT_TIMEOUT_MS = 10 * 60 * 1000;

export interface SharedHttpClientOptions {
  serverUrl: string;
  /** The JWT, or a function returning a fresh one (called per request, so expiring tokens can be renewed). */
  token: string | (() => string | Promise<string>);
  /** Sent as x-syncline-source; the token's own source claim, when it has one, must agree. */
  source: string;
  fetch?: typeof globalThis.fetch;
  requestTimeoutMs?: number;
}

export interface PullParams {
  after: bigint;
  afterOrdinal?: number;
  target?: string;
  limit?: number;
}

/**
 * The device's HTTP client for two-way sync. Failures are TransportErrors that
 * say whether a retry can help; a refused push (409 with conflicts) is an answer,
 * not an error.
 */
export class SharedHttpClient {
  readonly #o: SharedHttpClientOptions;
  readonly #fetch: typeof globalThis.fetch;
  readonly #timeoutMs: number;

  constructor(options: SharedHttpClientOptions) {
    endpoint(options.serverUrl, '');
    this.#o = options;
    // Called through a wrapper: a browser's fetch throws 'Illegal invocation' when called as another object's method.
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timeoutMs = options.requestTimeoutMs ?? PublisherDefaults.requestTimeoutMs;
  }

  config(): Promise<SharedConfigAnswer> {
    return this.#json(sharedConfigAnswerSchema, 'GET', SharedRoutes.config);
  }

  beginPush(begin: PushBegin): Promise<PushAnswer> {
    return this.#json(pushAnswerSchema, 'POST', SharedRoutes.push, begin, [409]);
  }

  uploadChunk(sessionId: string, index: number, rows: readonly WireRowChange[]): Promise<PushAnswer> {
    return this.#json(pushAnswerSchema, 'PUT', route(SharedRoutes.pushChunk, { id: sessionId, index: String(index) }), { rows });
  }

  commitPush(sessionId: string): Promise<PushAnswer> {
    return this.#json(pushAnswerSchema, 'POST', route(SharedRoutes.pushCommit, { id: sessionId }), undefined, [409]);
  }

  async abandonPush(sessionId: string): Promise<void> {
    await this.#json(undefined, 'DELETE', route(SharedRoutes.pushSession, { id: sessionId }));
  }

  pull(params: PullParams): Promise<PullAnswer> {
    const query = new URLSearchParams({ after: params.after.toString() });
    if (params.afterOrdinal !== undefined) query.set('after_ordinal', String(params.afterOrdinal));
    if (params.target !== undefined) query.set('target', params.target);
    if (params.limit !== undefined) query.set('limit', String(params.limit));
    return this.#json(pullAnswerSchema, 'GET', `${SharedRoutes.pull}?${query}`);
  }

  /** `limit`: rows per chunk (the server's default when absent). */
  createSnapshot(limit?: number): Promise<SnapshotAnswer> {
    return this.#json(snapshotAnswerSchema, 'POST', limit === undefined ? SharedRoutes.snapshots : `${SharedRoutes.snapshots}?limit=${limit}`);
  }

  /** Waits while the server reads a large scope; a chunk can take a while to be ready. */
  snapshotChunk(snapshotId: string, index: number): Promise<SnapshotChunkAnswer> {
    return this.#json(snapshotChunkAnswerSchema, 'GET', route(SharedRoutes.snapshotChunk, { id: snapshotId, index: String(index) }), undefined, [], SNAPSHOT_TIMEOUT_MS);
  }

  async dropSnapshot(snapshotId: string): Promise<void> {
    await this.#json(undefined, 'DELETE', route(SharedRoutes.snapshot, { id: snapshotId }));
  }

  /**
   * Follows the server's event stream and calls `onBundle` with each announced
   * head. Resolves when the stream ends or `signal` aborts; a failure to connect
   * is a TransportError.
   */
  async events(onBundle: (headSeq: string) => void, signal: AbortSignal): Promise<void> {
    const url = endpoint(this.#o.serverUrl, SharedRoutes.events);
    let response: Response;
    try {
      response = await this.#fetch(url, { headers: await this.#headers(false), signal });
    } catch (error) {
      if (signal.aborted) return;
      throw new TransportError(`GET ${url} failed: ${errorText(error)}`, { retryable: true, cause: error });
    }
    if (!response.ok || !response.body) throw await failure('GET', url, response);
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for await (const bytes of response.body) {
        buffered += decoder.decode(bytes as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = event.split('\n').find((line) => line.startsWith('data: '));
          const read = data ? readAnswer(bundleAnnouncementSchema, data.slice(6)) : undefined;
          if (read && 'answer' in read) onBundle(read.answer.head_seq);
        }
      }
    } catch (error) {
      if (!signal.aborted) throw new TransportError(`event stream ${url} broke: ${errorText(error)}`, { retryable: true, cause: error });
    }
  }

  async #headers(json: boolean): Promise<Record<string, string>> {
    const token = typeof this.#o.token === 'string' ? this.#o.token : await this.#o.token();
    const headers: Record<string, string> = { [Headers.authorization]: `Bearer ${token}`, [SOURCE_HEADER]: this.#o.source };
    if (json) headers[Headers.contentType] = 'application/json';
    return headers;
  }

  /** `answer`: the schema the body is read with; without one (a DELETE) the body is not read. `answers`: non-2xx statuses that are answers too. */
  async #json<T>(answer: z.ZodType<T>, method: string, path: string, body?: unknown, answers?: readonly number[], timeoutMs?: number): Promise<T>;
  async #json(answer: undefined, method: string, path: string): Promise<void>;
  async #json<T>(answer: z.ZodType<T> | undefined, method: string, path: string, body?: unknown, answers: readonly number[] = [], timeoutMs = this.#timeoutMs): Promise<T | void> {
    const url = endpoint(this.#o.serverUrl, path);
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers: await this.#headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new TransportError(`${method} ${url} failed: ${errorText(error)}`, { retryable: true, cause: error });
    }
    if (!response.ok && !answers.includes(response.status)) throw await failure(method, url, response);
    const text = await response.text();
    if (answer === undefined) return;
    const read = readAnswer(answer, text);
    if ('why' in read) throw new TransportError(`${method} ${url} answered ${response.status} without its answer: ${read.why}`, { retryable: true, status: response.status });
    return read.answer;
  }
}

async function failure(method: string, url: string, response: Response): Promise<TransportError> {
  return answerError(response, await response.text().catch(() => ''), `${method} ${url}: `);
}

function route(template: string, params: Record<string, string>): string {
  return template.replace(/:([a-z]+)/g, (_, name: string) => encodeURIComponent(params[name] ?? ''));
}
