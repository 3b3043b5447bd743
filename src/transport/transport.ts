import type { WireRowBatch } from '../protocol/batch.js';
import type { ControlAck, ControlMessage, ReceivedBatchAck } from '../protocol/control.js';
import type { WireTelemetryBatch } from '../protocol/telemetry-batch.js';

/** A batch in its wire form; sending the same one again is a retry (same batch_id, same bytes). */
export interface EncodedBatch<B extends { batch_id: string }> {
  readonly batch: B;
  /** The batch's JSON, or its gzip when `gzipped`. */
  readonly body: Buffer;
  readonly gzipped: boolean;
  /** Size of the JSON before compression: the cloud's body limit applies to it. */
  readonly jsonBytes: number;
}

export type EncodedRowBatch = EncodedBatch<WireRowBatch>;

/**
 * How the publisher reaches the cloud. Adapters (HTTP, MQTT) carry a batch and
 * bring back the cloud's ack; every failure is a TransportError that says
 * whether sending the same batch again can help. Encoding is a step of its own
 * so the publisher can prepare a table's next batch while the current one is in
 * flight.
 */
export interface Transport {
  /** No I/O. `json` is `JSON.stringify(batch)` when the caller has it already. */
  encodeRowBatch(batch: WireRowBatch, json?: string): Promise<EncodedRowBatch>;
  sendRowBatch(encoded: EncodedRowBatch, signal?: AbortSignal): Promise<ReceivedBatchAck>;
  /** Telemetry tables (cursor batches) go to their own route/topic with the same auth, encoding, ack and errors; `json` is the batch's JSON. */
  sendTelemetryBatch?(batch: WireTelemetryBatch, json: string, signal?: AbortSignal): Promise<ReceivedBatchAck>;
  // Flow control (optional, so a bare transport still ships batches): the cloud's pause and
  // resume controls come back on acks (HTTP), by fetching (HTTP) or pushed (MQTT).
  /** Confirms a control; the cloud sends a control again until it is acked. */
  ackControl?(ack: ControlAck, signal?: AbortSignal): Promise<void>;
  /** Controls not acked yet; an HTTP device asks while a table is paused, as no ack would tell it of the resume. */
  fetchControls?(signal?: AbortSignal): Promise<ControlMessage[]>;
  /** Controls pushed by the cloud (MQTT downlink). */
  onControl?(handler: (control: ControlMessage) => void): void;
  /** Releases the connection (MQTT); the caller that created the transport calls it. */
  close?(): Promise<void>;
}

export interface TransportErrorDetails {
  /** Sending the same batch again may succeed (network down, timeout, 5xx, 429). */
  retryable: boolean;
  /** HTTP status, or its equivalent for other adapters; absent when no answer came back. */
  status?: number;
  /** The server's error code (its `error` field), e.g. `stale_epoch`, `invalid_batch`. */
  code?: string;
  /** How long the server asked us to wait before retrying. */
  retryAfterMs?: number;
  cause?: unknown;
}

export class TransportError extends Error {
  readonly retryable: boolean;
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, details: TransportErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'TransportError';
    this.retryable = details.retryable;
    this.status = details.status;
    this.code = details.code;
    this.retryAfterMs = details.retryAfterMs;
  }
}

export function isTransportError(error: unknown): error is TransportError {
  return error instanceof TransportError;
}

/** Statuses worth retrying with the same batch: the server or something on the way is struggling, not the batch. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 425 || status === 429;
}
