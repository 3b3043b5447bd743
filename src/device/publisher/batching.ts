import { ROW_BATCH_FORMAT_VERSION } from '../../protocol/constants.js';
import type { RowOp, WireRow, WireRowBatch } from '../../protocol/batch.js';
import type { ColumnInfo, TableKey } from '../../protocol/schema.js';
import { encodeValue, type SqlValue } from '../../protocol/values.js';
import { JournalOps, type JournalOp } from '../journal/journal-schema.js';

/**
 * Cutting journal entries into row batches, as pure functions. A batch holds
 * one table and one schema, rows in seq order, and stays within the row and byte
 * limits; the only batch allowed past the byte limit is a single row that is
 * too big on its own (the server then answers 413 and the row is quarantined).
 */

export interface BatchLimits {
  maxRows: number;
  maxBytes: number;
}

/** A row ready to ship: its schema and its encoded size in bytes (JSON, UTF-8, plus the separating comma). */
export interface SizedRow {
  schemaId: number;
  bytes: number;
}

const OPS: Record<JournalOp, RowOp> = {
  [JournalOps.insert]: 'insert',
  [JournalOps.update]: 'update',
  [JournalOps.delete]: 'delete',
  [JournalOps.snapshot]: 'snapshot',
};

export function wireRow(seq: number, op: JournalOp, pk: readonly SqlValue[], row: readonly SqlValue[] | undefined): WireRow {
  const out: WireRow = { seq, op: OPS[op], pk: pk.map(encodeValue) };
  if (op !== JournalOps.delete && row) out.row = row.map(encodeValue);
  return out;
}

/** A row's share of the body: its JSON text (`JSON.stringify(row)`) plus the separating comma. */
export function rowBytes(rowJson: string): number {
  return Buffer.byteLength(rowJson) + 1;
}

/**
 * How many rows from `from` on form the next batch: rows of that row's schema,
 * as many as fit in `maxRows` and in `maxBytes` together with the envelope (at
 * least one). Returns 0 only when no row is left.
 */
export function nextBatchSize(rows: readonly SizedRow[], limits: BatchLimits, envelopeBytes: number, from = 0): number {
  if (from >= rows.length) return 0;
  const schemaId = rows[from]!.schemaId;
  let bytes = envelopeBytes + rows[from]!.bytes;
  let count = 1;
  while (from + count < rows.length && count < limits.maxRows) {
    const next = rows[from + count]!;
    if (next.schemaId !== schemaId || bytes + next.bytes > limits.maxBytes) break;
    bytes += next.bytes;
    count += 1;
  }
  return count;
}

export interface BatchHead {
  batchId: string;
  epoch: string;
  table: string;
  key: TableKey;
  schemaHash: string;
  columns: ColumnInfo[];
}

export function buildRowBatch(head: BatchHead, rows: WireRow[]): WireRowBatch {
  return {
    format_version: ROW_BATCH_FORMAT_VERSION,
    batch_id: head.batchId,
    journal_epoch: head.epoch,
    source_table: head.table,
    key: head.key,
    schema: { hash: head.schemaHash, columns: head.columns },
    first_seq: rows[0]!.seq,
    last_seq: rows[rows.length - 1]!.seq,
    rows,
  };
}

/** The batch's size without rows, with the widest possible seqs: added to the row sizes it bounds the whole body. */
export function envelopeBytes(head: BatchHead): number {
  const probe: WireRowBatch = { ...buildRowBatch(head, [{ seq: Number.MAX_SAFE_INTEGER, op: 'insert', pk: [] }]), rows: [] };
  return Buffer.byteLength(JSON.stringify(probe));
}

/**
 * The batch's JSON, exactly `JSON.stringify(batch)`, spliced from the JSON texts
 * of its rows: they were rendered to size the rows, and rendering them again
 * would be most of the cost. Relies on `rows` being the last key (buildRowBatch).
 */
export function rowBatchJson(batch: WireRowBatch, rowJsons: readonly string[]): string {
  const envelope = JSON.stringify({ ...batch, rows: [] });
  return `${envelope.slice(0, -']}'.length)}${rowJsons.join(',')}]}`;
}

/** Halves a batch the server found too large; each half gets its own id because its content differs. */
export function splitRowBatch(batch: WireRowBatch, newId: () => string): [WireRowBatch, WireRowBatch] {
  if (batch.rows.length < 2) throw new RangeError('a batch of one row cannot be split');
  const mid = batch.rows.length >> 1;
  const half = (rows: WireRow[]): WireRowBatch => ({ ...batch, batch_id: newId(), first_seq: rows[0]!.seq, last_seq: rows[rows.length - 1]!.seq, rows });
  return [half(batch.rows.slice(0, mid)), half(batch.rows.slice(mid))];
}
