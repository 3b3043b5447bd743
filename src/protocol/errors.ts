import type { ErrorAnswer } from './error-answer.js';

/**
 * One catalogue of error codes for device and cloud. Errors become HTTP or MQTT
 * answers only at the front door; everywhere else they travel as SynclineError.
 */
export const ErrorCodes = {
  /** Body is not valid JSON or not valid gzip. */
  malformed_payload: 400,
  /** Body parsed but a field is missing or has the wrong shape; details name the field. */
  invalid_batch: 400,
  /** format_version is not one this server speaks. */
  invalid_format_version: 400,
  /** batch_id or journal_epoch is not a UUIDv7. */
  invalid_batch_id: 400,
  /** More rows in one batch than the server accepts. */
  batch_too_many_rows: 400,
  /** first_seq/last_seq or row order does not match the rows carried. */
  row_count_mismatch: 400,
  /** A REAL value is NaN or infinite (PostgreSQL mirrors cannot hold it faithfully), or a plain JSON number is an integer outside ±(2^53-1) (use `{"$int": "..."}`); context names the field. */
  invalid_number_encoding: 400,
  /** A value's wire encoding is not one of the documented forms. */
  invalid_value_encoding: 400,
  /** The schema hash does not match the columns it claims to describe. */
  schema_hash_mismatch: 400,
  /** A table or column name that cannot be used safely (empty, too long, reserved prefix, NUL). */
  hostile_identifier: 400,
  /** Row width does not match the schema's column count, or key width the key's. */
  row_shape_mismatch: 400,
  /** Request body larger than the configured limit. */
  payload_too_large: 413,
  /** The request did not arrive in full within the server's request timeout. */
  request_timeout: 408,
  /** A path segment (an id, a scope) is longer than the server reads. */
  uri_too_long: 414,
  /** The request's headers are larger than the server reads. */
  headers_too_large: 431,
  /** Missing, unknown or revoked credential. */
  unauthorized: 401,
  /** Credential is valid but may not do this. */
  forbidden: 403,
  /** The addressed object does not exist (in the caller's scope). */
  not_found: 404,
  /** The batch's journal epoch is older than the one the lineage already follows. */
  stale_epoch: 409,
  /** A state transition was attempted from the wrong state or with a stale version. */
  conflict: 409,
  /** A review action quoted an action_version other than the review's current one (someone else acted since). */
  stale_version: 409,
  /** An Idempotency-Key was sent again with a different request than the one it first answered. */
  idempotency_key_reused: 422,
  /** A server-side fault; retry later. */
  internal: 500,
  /** The server is starting or shutting down, or cannot reach its database right now; retry later. */
  unavailable: 503,
  /** The HTTP server holds as many client connections as it is configured for; retry shortly. */
  too_many_connections: 503,
  /** Device-side: the SQLite file cannot be captured (no such file, not a database, locked). */
  capture_failed: 500,
  /** Device-side: the cloud could not be reached within the retry budget. */
  transport_failed: 503,
  /** Device-side: a journal entry cannot be decoded (edited by hand or a foreign writer). */
  journal_corrupt: 500,
  /** Bad command-line or configuration value. */
  invalid_config: 400,
  /** An admin API request has a bad parameter (query string, path or body field); context names it. */
  invalid_request: 400,
  /** Device-side: a change-stream resume point (checkpoint or `from`) is older than the journal still holds; re-bootstrap with a snapshot. */
  checkpoint_expired: 410,
  /** Device-side: a change-stream subscriber stopped taking events while its buffer was full; it was closed so nothing else waits for it. */
  subscriber_overflow: 503,
  /** An MQTT client published or subscribed outside its own device root, or on a topic only the cloud may use. */
  topic_denied: 403,
  /** The MQTT broker cannot be reached, refused the connection, or its port is taken. */
  broker_unavailable: 503,
  /** Two-way sync: a table that is not declared as shared (or not in the direction asked for). */
  unknown_table: 400,
  /** Two-way sync: the bundles after the device's watermark were pruned; hydrate from a snapshot, then pull. */
  history_pruned: 410,
  /** Two-way sync: a chunked push was committed before every chunk arrived. */
  incomplete_upload: 409,
  /** Telemetry: the declared time column is not a column of the table. */
  telemetry_time_column_missing: 400,
  /** Telemetry: a time value cannot be read as a time (text that is not ISO 8601, a blob, out of range). */
  telemetry_bad_time: 400,
  /** Telemetry: a batch sent while its predecessor was unacknowledged (after_seq) arrived before the cloud holds that predecessor; send it again once the predecessor is acknowledged. */
  telemetry_too_early: 425,
  /** Telemetry: a column mapping is invalid (a point mapped twice, a kind that does not fit the point). */
  telemetry_bad_mapping: 400,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** What an error is about: whichever of these are known where it is raised. */
export interface ErrorContext {
  device_id?: string;
  lineage_id?: string;
  batch_id?: string;
  table?: string;
  field?: string;
  [key: string]: unknown;
}

export class SynclineError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SynclineError';
    this.code = code;
    this.status = ErrorCodes[code];
    this.context = context;
  }

  /** The body the front doors send (errorAnswerSchema); never includes the cause's stack. */
  toJSON(): ErrorAnswer & { error: ErrorCode } {
    return { error: this.code, message: this.message, context: this.context };
  }

  withContext(extra: ErrorContext): SynclineError {
    return new SynclineError(this.code, this.message, { ...this.context, ...extra }, { cause: this.cause });
  }
}

export function isSynclineError(error: unknown): error is SynclineError {
  return error instanceof SynclineError;
}
