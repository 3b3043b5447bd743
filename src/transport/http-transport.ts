import type { z } from 'zod';
import type { WireRowBatch } from '../protocol/batch.js';
import type { WireTelemetryBatch } from '../protocol/telemetry-batch.js';
import type { ControlAck, ControlMessage, ReceivedBatchAck } from '../protocol/control.js';
import { controlSchemas } from '../protocol/lazy-schemas.js';
import { Headers, PublisherDefaults, Routes } from '../protocol/constants.js';
import { answerError, endpoint, errorText, readAnswer } from './http-util.js';
import { encodeRowBatch } from './row-batch-encoding.js';
import { TransportError, type EncodedBatch, type EncodedRowBatch, type Transport } from './transport.js';

export interface HttpTransportOptions {
  /** Base URL of the Syncline server, e.g. `https://sync.example.com`. */
  serverUrl: string;
  /** Device token; sent as a bearer credential and never logged. */
  token: string;
  fetch?: typeof globalThis.fetch;
  requestTimeoutMs?: number;
  /** Bodies above this size are gzipped when that makes them smaller. */
  compressAboveBytes?: number;
}

/** POSTs row batches to `${server}/v1/sync/rows/batch` and turns every outcome into an ack or a TransportError. */
export class HttpTransport implements Transport {
  readonly #url: string;
  readonly #telemetryUrl: string;
  readonly #controlsUrl: string;
  readonly #controlsAckUrl: string;
  readonly #token: string;
  readonly #fetch: typeof globalThis.fetch;
  readonly #timeoutMs: number;
  readonly #compressAbove: number;

  constructor(options: HttpTransportOptions) {
    this.#url = endpoint(options.serverUrl, Routes.rowBatch);
    this.#telemetryUrl = endpoint(options.serverUrl, Routes.telemetryBatch);
    this.#controlsUrl = endpoint(options.serverUrl, Routes.syncControls);
    this.#controlsAckUrl = endpoint(options.serverUrl, Routes.syncControlsAck);
    this.#token = options.token;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#timeoutMs = options.requestTimeoutMs ?? PublisherDefaults.requestTimeoutMs;
    this.#compressAbove = options.compressAboveBytes ?? PublisherDefaults.compressAboveBytes;
  }

  encodeRowBatch(batch: WireRowBatch, json = JSON.stringify(batch)): Promise<EncodedRowBatch> {
    return encodeRowBatch(batch, json, this.#compressAbove);
  }

  sendRowBatch(encoded: EncodedRowBatch, signal?: AbortSignal): Promise<ReceivedBatchAck> {
    return this.#post(this.#url, encoded, signal);
  }

  async sendTelemetryBatch(batch: WireTelemetryBatch, json: string, signal?: AbortSignal): Promise<ReceivedBatchAck> {
    const encoded = await encodeRowBatch(batch, json, this.#compressAbove);
    return this.#post(this.#telemetryUrl, encoded, signal);
  }

  async #post(url: string, encoded: EncodedBatch<{ batch_id: string }>, signal?: AbortSignal): Promise<ReceivedBatchAck> {
    const { batch, body } = encoded;
    const headers: Record<string, string> = {
      [Headers.authorization]: `Bearer ${this.#token}`,
      [Headers.contentType]: 'application/json',
    };
    if (encoded.gzipped) headers[Headers.contentEncoding] = 'gzip';
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method: 'POST',
        headers,
        body,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (error) {
      const why = timeout.aborted ? `no answer within ${this.#timeoutMs} ms` : signal?.aborted ? 'aborted' : errorText(error);
      throw new TransportError(`POST ${url} failed: ${why}`, { retryable: true, cause: error });
    }
    const text = await response.text().catch(() => '');
    if (response.ok) return parseAck(text, batch.batch_id, response.status);
    throw await answerError(response, text);
  }

  async fetchControls(signal?: AbortSignal): Promise<ControlMessage[]> {
    const { controlsAnswerSchema } = await controlSchemas();
    return (await this.#small('GET', this.#controlsUrl, controlsAnswerSchema, undefined, signal)).controls;
  }

  async ackControl(ack: ControlAck, signal?: AbortSignal): Promise<void> {
    const { controlAckAnswerSchema } = await controlSchemas();
    await this.#small('POST', this.#controlsAckUrl, controlAckAnswerSchema, ack, signal);
  }

  /** A small JSON request of the flow-control API; failures are TransportErrors like a batch's. */
  async #small<T>(method: 'GET' | 'POST', url: string, answer: z.ZodType<T>, json: unknown, signal?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const headers: Record<string, string> = { [Headers.authorization]: `Bearer ${this.#token}` };
    if (json !== undefined) headers[Headers.contentType] = 'application/json';
    let response: Response;
    try {
      response = await this.#fetch(url, { method, headers, body: json === undefined ? undefined : JSON.stringify(json), signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (error) {
      throw new TransportError(`${method} ${url} failed: ${errorText(error)}`, { retryable: true, cause: error });
    }
    const text = await response.text().catch(() => '');
    if (!response.ok) throw await answerError(response, text, `${method} ${url}: `);
    const read = readAnswer(answer, text);
    if ('why' in read) throw new TransportError(`${method} ${url}: server answered ${response.status} without its answer: ${read.why}`, { retryable: true, status: response.status });
    return read.answer;
  }
}

/**
 * A 2xx whose body is not our ack for this batch (a captive portal, a proxy, an
 * ack for another batch) proves nothing was stored: retry.
 */
async function parseAck(text: string, batchId: string, status: number): Promise<ReceivedBatchAck> {
  const refused = (why: string) => new TransportError(`server answered ${status} without an ack for batch ${batchId}: ${why}`, { retryable: true, status });
  const read = readAnswer((await controlSchemas()).receivedBatchAckSchema, text);
  if ('why' in read) throw refused(read.why);
  if (read.answer.batch_id !== batchId) throw refused(`it acks batch ${read.answer.batch_id}`);
  return read.answer;
}
