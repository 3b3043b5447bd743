import type { BatchAck, WireRowBatch } from '../protocol/batch.js';
import type { WireTelemetryBatch } from '../protocol/telemetry-batch.js';
import type { ControlAck, ControlMessage } from '../protocol/control.js';
import { controlParser } from '../protocol/control-parser.js';
import { Headers, PublisherDefaults, Routes } from '../protocol/constants.js';
import { answerError, endpoint, errorText, parseJson } from './http-util.js';
import { encodeRowBatch } from './row-batch-encoding.js';
import { isRetryableStatus, TransportError, type EncodedBatch, type EncodedRowBatch, type Transport } from './transport.js';

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

  sendRowBatch(encoded: EncodedRowBatch, signal?: AbortSignal): Promise<BatchAck> {
    return this.#post(this.#url, encoded, signal);
  }

  async sendTelemetryBatch(batch: WireTelemetryBatch, json: string, signal?: AbortSignal): Promise<BatchAck> {
    const encoded = await encodeRowBatch(batch, json, this.#compressAbove);
    return this.#post(this.#telemetryUrl, encoded, signal);
  }

  async #post(url: string, encoded: EncodedBatch<{ batch_id: string }>, signal?: AbortSignal): Promise<BatchAck> {
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
    throw answerError(response, text);
  }

  async fetchControls(signal?: AbortSignal): Promise<ControlMessage[]> {
    const body = (await this.#small('GET', this.#controlsUrl, undefined, signal)) as { controls?: unknown } | undefined;
    if (!Array.isArray(body?.controls) || body.controls.length === 0) return [];
    return body.controls.map(await controlParser());
  }

  async ackControl(ack: ControlAck, signal?: AbortSignal): Promise<void> {
    await this.#small('POST', this.#controlsAckUrl, ack, signal);
  }

  /** A small JSON request of the flow-control API; failures are TransportErrors like a batch's. */
  async #small(method: 'GET' | 'POST', url: string, json: unknown, signal?: AbortSignal): Promise<unknown> {
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
    if (!response.ok) throw new TransportError(`server answered ${response.status} to ${method} ${url}`, { retryable: isRetryableStatus(response.status), status: response.status });
    return parseJson(text);
  }
}

/** A 2xx whose body is not our ack (a captive portal, a proxy) proves nothing was stored: retry. */
function parseAck(text: string, batchId: string, status: number): BatchAck {
  const ack = parseJson(text) as Partial<BatchAck> | undefined;
  const valid =
    ack !== undefined &&
    ack !== null &&
    typeof ack === 'object' &&
    ack.batch_id === batchId &&
    (ack.status === 'accepted' || ack.status === 'duplicate') &&
    typeof ack.last_seq === 'number';
  if (!valid) throw new TransportError(`server answered ${status} without an ack for batch ${batchId}`, { retryable: true, status });
  return ack as BatchAck;
}

