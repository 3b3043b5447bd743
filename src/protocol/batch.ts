import { z } from 'zod';
import { SynclineError } from './errors.js';
import { ROW_BATCH_FORMAT_VERSION, SERVER_MAX_ROWS_PER_BATCH } from './constants.js';
import { schemaFingerprint, type ColumnInfo, type TableKey } from './schema.js';
import { decodeValue, type SqlValue, type WireValue } from './values.js';

export type RowOp = 'insert' | 'update' | 'delete' | 'snapshot';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** One column of a table's schema as devices describe it (row and telemetry batches). */
export const columnSchema = z.strictObject({
  name: z.string(),
  declared_type: z.string().max(200),
  affinity: z.enum(['INTEGER', 'TEXT', 'REAL', 'BLOB', 'NUMERIC']),
  pk: z.number().int().min(0).max(2000),
  notnull: z.boolean(),
  has_default: z.boolean(),
});

/** A journal or cursor sequence number: positive and exact in a double. */
export const seqSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

const ROW_OPS = new Set(['insert', 'update', 'delete', 'snapshot']);
const ROW_FIELDS = new Set(['seq', 'op', 'pk', 'row']);

/**
 * The envelope of a row batch: one source table, one schema, rows in device commit
 * order. Tenant and device identity are never part of it; they come from the
 * credential. Unknown top-level fields (including any tenant fields a device sends)
 * are dropped by the parser and never stored.
 */
export const rowBatchSchema = z.object({
  format_version: z.number().int(),
  batch_id: z.string(),
  journal_epoch: z.string(),
  source_table: z.string(),
  key: z.strictObject({ kind: z.enum(['primary_key', 'rowid']), columns: z.array(z.string()).min(1).max(64) }),
  schema: z.strictObject({ hash: z.string().regex(/^[0-9a-f]{64}$/), columns: z.array(columnSchema).min(1).max(2000) }),
  first_seq: seqSchema,
  last_seq: seqSchema,
  // Rows are checked by decodeRows by hand: they are the bulk of every batch, and a schema library costs more per row than the decode itself.
  rows: z.array(z.unknown()).min(1),
});

/** A batch as it travels (values in wire form). */
export interface WireRowBatch {
  format_version: number;
  batch_id: string;
  journal_epoch: string;
  source_table: string;
  key: TableKey;
  schema: { hash: string; columns: ColumnInfo[] };
  first_seq: number;
  last_seq: number;
  rows: WireRow[];
}

export interface WireRow {
  seq: number;
  op: RowOp;
  pk: WireValue[];
  row?: WireValue[];
}

/** A batch after validation (values decoded). */
export interface RowBatch extends Omit<WireRowBatch, 'rows'> {
  rows: DecodedRow[];
}

export interface DecodedRow {
  seq: number;
  op: RowOp;
  pk: SqlValue[];
  /** Absent for deletes; aligned with `schema.columns`. */
  row?: SqlValue[];
}

/** Declared with its schema in control.ts (it carries controls); named here beside the batch it answers. */
export type { BatchAck } from './control.js';

export function isUuidV7(value: string): boolean {
  return UUID_V7.test(value);
}

function firstIssuePath(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? issue.path.join('.') || '(root)' : '(root)';
}

/**
 * Validates and decodes a batch. Every failure is a SynclineError whose code says
 * what is wrong and whose context names the field, so a device can report it.
 */
export function parseRowBatch(input: unknown, limits: { maxRows?: number } = {}): RowBatch {
  const maxRows = limits.maxRows ?? SERVER_MAX_ROWS_PER_BATCH;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new SynclineError('invalid_batch', 'a batch is a JSON object', { field: '(root)' });
  }
  const raw = input as Record<string, unknown>;
  if (raw.format_version !== ROW_BATCH_FORMAT_VERSION) {
    throw new SynclineError('invalid_format_version', `format_version must be ${ROW_BATCH_FORMAT_VERSION}`, { field: 'format_version' });
  }
  if (Array.isArray(raw.rows) && raw.rows.length > maxRows) {
    throw new SynclineError('batch_too_many_rows', `a batch carries at most ${maxRows} rows, this one ${raw.rows.length}`, { field: 'rows' });
  }
  const parsed = rowBatchSchema.safeParse(input);
  if (!parsed.success) {
    const field = firstIssuePath(parsed.error);
    throw new SynclineError('invalid_batch', `${field}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, { field });
  }
  const b = parsed.data;
  const { context } = checkEnvelope(b);
  if (b.key.kind === 'primary_key') {
    const declared = b.schema.columns.filter((c) => c.pk > 0).sort((x, y) => x.pk - y.pk).map((c) => c.name);
    if (declared.join('\u0000') !== b.key.columns.join('\u0000')) {
      throw new SynclineError('invalid_batch', 'key.columns must be the schema primary key in key order', { ...context, field: 'key.columns' });
    }
  } else if (b.key.columns.length !== 1 || b.key.columns[0] !== 'rowid' || b.schema.columns.some((c) => c.pk > 0)) {
    throw new SynclineError('invalid_batch', 'a rowid key is ["rowid"] on a table without a primary key', { ...context, field: 'key' });
  }
  const width = b.schema.columns.length;
  const keyWidth = b.key.columns.length;
  let rows: DecodedRow[];
  try {
    rows = decodeRows(b.rows, width, keyWidth);
  } catch (error) {
    throw error instanceof SynclineError ? error.withContext(context) : error;
  }
  if (rows[0]!.seq !== b.first_seq || rows[rows.length - 1]!.seq !== b.last_seq) {
    throw new SynclineError('row_count_mismatch', 'first_seq/last_seq do not match the first and last rows', { ...context, field: 'first_seq' });
  }
  return { ...b, rows };
}

function decodeRows(wireRows: readonly unknown[], width: number, keyWidth: number): DecodedRow[] {
  const rows: DecodedRow[] = new Array(wireRows.length);
  let previous = 0;
  // Field paths are spelled out only for the check that fails: building them for every row cost a tenth of the decode.
  for (let i = 0; i < wireRows.length; i++) {
    const r = receivedRow(wireRows[i], i);
    if (r.seq <= previous) throw new SynclineError('row_count_mismatch', 'rows must be in strictly increasing seq order', { field: `rows.${i}.seq` });
    previous = r.seq;
    if (r.pk.length !== keyWidth) throw new SynclineError('row_shape_mismatch', `pk has ${r.pk.length} values, key has ${keyWidth}`, { field: `rows.${i}.pk` });
    const pk = decodeValues(r.pk, i, 'pk');
    if (hasNull(pk)) throw new SynclineError('row_shape_mismatch', 'primary key values cannot be NULL', { field: `rows.${i}.pk` });
    if (r.op === 'delete') {
      if (r.row !== undefined) throw new SynclineError('row_shape_mismatch', 'a delete carries no row', { field: `rows.${i}.row` });
      rows[i] = { seq: r.seq, op: r.op, pk };
      continue;
    }
    if (!r.row || r.row.length !== width) {
      throw new SynclineError('row_shape_mismatch', `row must have ${width} values`, { field: `rows.${i}.row` });
    }
    rows[i] = { seq: r.seq, op: r.op, pk, row: decodeValues(r.row, i, 'row') };
  }
  return rows;
}

function hasNull(values: readonly SqlValue[]): boolean {
  for (let j = 0; j < values.length; j++) if (values[j] === null) return true;
  return false;
}

interface ReceivedRow {
  seq: number;
  op: DecodedRow['op'];
  pk: unknown[];
  row?: unknown[];
}

/** The shape check the schema library would make, written out: {seq, op, pk, row?} and nothing else. */
function receivedRow(value: unknown, index: number): ReceivedRow {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SynclineError('invalid_batch', `rows.${index}: a row is an object`, { field: `rows.${index}` });
  const r = value as Record<string, unknown>;
  for (const key in r) if (!ROW_FIELDS.has(key)) throw badRowField(index, key, 'unknown field');
  if (typeof r.seq !== 'number' || !Number.isSafeInteger(r.seq) || r.seq < 1) throw badRowField(index, 'seq', 'a whole number from 1 to 2^53-1');
  if (typeof r.op !== 'string' || !ROW_OPS.has(r.op)) throw badRowField(index, 'op', 'one of insert, update, delete, snapshot');
  if (!Array.isArray(r.pk) || r.pk.length === 0) throw badRowField(index, 'pk', 'a non-empty array');
  if (r.row !== undefined && !Array.isArray(r.row)) throw badRowField(index, 'row', 'an array');
  return r as unknown as ReceivedRow;
}

function badRowField(index: number, field: string, message: string): SynclineError {
  return new SynclineError('invalid_batch', `rows.${index}.${field}: ${message}`, { field: `rows.${index}.${field}` });
}

/** Decodes a value list; the field path is only spelled out for the value that fails. */
function decodeValues(wire: readonly unknown[], row: number, part: 'pk' | 'row'): SqlValue[] {
  const values = new Array<SqlValue>(wire.length);
  for (let j = 0; j < wire.length; j++) {
    const v = wire[j];
    // Strings and null are their own decoding, and the commonest values.
    values[j] = typeof v === 'string' || v === null ? v : decodeOrExplain(v, row, part, j);
  }
  return values;
}

function decodeOrExplain(value: unknown, row: number, part: 'pk' | 'row', index: number): SqlValue {
  try {
    return decodeValue(value);
  } catch (error) {
    if (!(error instanceof SynclineError)) throw error;
    throw new SynclineError(error.code, error.message, { ...error.context, field: `rows.${row}.${part}.${index}` });
  }
}

/**
 * Checks what row and telemetry batches share beyond their schema: UUIDv7 ids, a
 * schema hash that fingerprints its columns, unique column names. Returns the
 * error context and the column names for the checks that follow.
 */
export function checkEnvelope(b: { batch_id: string; journal_epoch: string; source_table: string; schema: { hash: string; columns: ColumnInfo[] } }): {
  context: { batch_id: string; table: string };
  names: Set<string>;
} {
  const context = { batch_id: b.batch_id, table: b.source_table };
  if (!isUuidV7(b.batch_id)) throw new SynclineError('invalid_batch_id', 'batch_id must be a lowercase UUIDv7', { ...context, field: 'batch_id' });
  if (!isUuidV7(b.journal_epoch)) throw new SynclineError('invalid_batch_id', 'journal_epoch must be a lowercase UUIDv7', { ...context, field: 'journal_epoch' });
  if (schemaFingerprint(b.schema.columns) !== b.schema.hash) {
    throw new SynclineError('schema_hash_mismatch', 'schema.hash is not the fingerprint of schema.columns', { ...context, field: 'schema.hash' });
  }
  const names = new Set(b.schema.columns.map((c) => c.name));
  if (names.size !== b.schema.columns.length) throw new SynclineError('invalid_batch', 'schema.columns has duplicate names', { ...context, field: 'schema.columns' });
  return { context, names };
}
