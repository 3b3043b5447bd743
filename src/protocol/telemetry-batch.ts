import { z } from 'zod';
import { checkEnvelope, columnSchema, seqSchema } from './batch.js';
import { SERVER_MAX_ROWS_PER_BATCH, TELEMETRY_BATCH_FORMAT_VERSION } from './constants.js';
import { SynclineError } from './errors.js';
import type { ColumnInfo } from './schema.js';
import { decodeValue, type SqlValue, type WireValue } from './values.js';

/**
 * A telemetry batch: new rows of one append-only table, read by a cursor on the
 * device (no triggers). `seq` numbers rows per (table, epoch) strictly upwards, so
 * the cloud skips rows it already holds exactly as for row batches; the epoch is the
 * table's own telemetry epoch, not the journal's. Rows are positional, aligned with
 * `schema.columns`; only inserts exist.
 */
export interface WireTelemetryBatch {
  format_version: number;
  batch_id: string;
  journal_epoch: string;
  source_table: string;
  /** The column holding each row's time, or null (the cloud then stamps rows with their arrival time). */
  time_column: string | null;
  schema: { hash: string; columns: ColumnInfo[] };
  first_seq: number;
  last_seq: number;
  /**
   * Set on a batch sent while the batch before it is still unacknowledged: that
   * batch's last seq. The cloud takes it only once it holds that seq (until then
   * it answers telemetry_too_early), so batches in flight together can never be
   * stored out of order. A batch read from the acknowledged cursor has none.
   */
  after_seq?: number;
  rows: { seq: number; row: WireValue[] }[];
}

export interface TelemetryRow {
  seq: number;
  row: SqlValue[];
}

export interface TelemetryBatch extends Omit<WireTelemetryBatch, 'rows'> {
  rows: TelemetryRow[];
}


const envelope = z.object({
  format_version: z.literal(TELEMETRY_BATCH_FORMAT_VERSION),
  batch_id: z.string(),
  journal_epoch: z.string(),
  source_table: z.string(),
  time_column: z.string().nullable(),
  schema: z.strictObject({ hash: z.string().regex(/^[0-9a-f]{64}$/), columns: z.array(columnSchema).min(1).max(2000) }),
  first_seq: seqSchema,
  last_seq: seqSchema,
  after_seq: seqSchema.optional(),
  rows: z.array(z.unknown()).min(1),
});
/** The envelope's schema, for the OpenAPI document. */
export { envelope as telemetryBatchSchema };

/** Validates and decodes a telemetry batch; every failure names its field. */
export function parseTelemetryBatch(input: unknown, limits: { maxRows?: number } = {}): TelemetryBatch {
  const maxRows = limits.maxRows ?? SERVER_MAX_ROWS_PER_BATCH;
  const rawRows = typeof input === 'object' && input !== null ? (input as { rows?: unknown }).rows : undefined;
  if (Array.isArray(rawRows) && rawRows.length > maxRows) {
    throw new SynclineError('batch_too_many_rows', `a batch carries at most ${maxRows} rows, this one ${rawRows.length}`, { field: 'rows' });
  }
  const parsed = envelope.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(root)';
    throw new SynclineError(field === 'format_version' ? 'invalid_format_version' : 'invalid_batch', `${field}: ${issue?.message ?? 'invalid'}`, { field });
  }
  const b = parsed.data;
  const { context, names } = checkEnvelope(b);
  if (b.time_column !== null && !names.has(b.time_column)) {
    throw new SynclineError('telemetry_time_column_missing', `time column ${JSON.stringify(b.time_column.slice(0, 80))} is not a column of the table`, { ...context, field: 'time_column' });
  }
  const width = b.schema.columns.length;
  const rows = new Array<TelemetryRow>(b.rows.length);
  let previous = 0;
  for (let i = 0; i < b.rows.length; i++) {
    const at = `rows.${i}`;
    const r = b.rows[i] as { seq?: unknown; row?: unknown } | null;
    if (typeof r !== 'object' || r === null || Array.isArray(r) || Object.keys(r).some((k) => k !== 'seq' && k !== 'row')) {
      throw new SynclineError('invalid_batch', `${at}: a row is {seq, row}`, { ...context, field: at });
    }
    if (typeof r.seq !== 'number' || !Number.isSafeInteger(r.seq) || r.seq < 1) throw new SynclineError('invalid_batch', `${at}.seq: a whole number from 1 to 2^53-1`, { ...context, field: `${at}.seq` });
    if (r.seq <= previous) throw new SynclineError('row_count_mismatch', 'rows must be in strictly increasing seq order', { ...context, field: `${at}.seq` });
    previous = r.seq;
    if (!Array.isArray(r.row) || r.row.length !== width) throw new SynclineError('row_shape_mismatch', `row must have ${width} values`, { ...context, field: `${at}.row` });
    const values = new Array<SqlValue>(width);
    for (let j = 0; j < width; j++) {
      const v: unknown = r.row[j];
      if (typeof v === 'string' || v === null) values[j] = v;
      else {
        try {
          values[j] = decodeValue(v);
        } catch (error) {
          throw error instanceof SynclineError ? new SynclineError(error.code, error.message, { ...context, field: `${at}.row.${j}` }) : error;
        }
      }
    }
    rows[i] = { seq: r.seq, row: values };
  }
  if (rows[0]!.seq !== b.first_seq || rows[rows.length - 1]!.seq !== b.last_seq) {
    throw new SynclineError('row_count_mismatch', 'first_seq/last_seq do not match the first and last rows', { ...context, field: 'first_seq' });
  }
  if (b.after_seq !== undefined && b.after_seq >= b.first_seq) {
    throw new SynclineError('row_count_mismatch', 'after_seq must be below first_seq', { ...context, field: 'after_seq' });
  }
  return { ...b, rows };
}
