import type { BatchAck } from '../../protocol/batch.js';
import { SynclineError } from '../../protocol/errors.js';
import type { Queryable } from '../store/store.js';
import { arrayParam } from '../store/array-param.js';

/** Row batches and telemetry batches keep separate ledgers of the same shape. */
export type SegmentTable = 'edge_export_segments' | 'telemetry_segments';

interface LedgerBatch<Row extends { seq: number }> {
  batch_id: string;
  journal_epoch: string;
  first_seq: number;
  last_seq: number;
  rows: Row[];
}

interface LedgerLineage {
  id: string;
  journal_epoch: string | null;
  last_seq: number;
}

/** The ack stored for (device, batch_id), so a redelivery gets the same answer. */
export async function storedAck(tx: Queryable, table: SegmentTable, deviceId: string, batchId: string): Promise<BatchAck | undefined> {
  const { rows } = await tx.query<{ ack: BatchAck }>(`SELECT ack FROM ${table} WHERE device_id = $1 AND batch_id = $2`, [deviceId, batchId]);
  return rows[0]?.ack;
}

/** How a group names a (device, batch_id) pair: uuids compare lowercased, as PostgreSQL prints them. */
export const ledgerKey = (deviceId: string, batchId: string): string => `${deviceId.toLowerCase()}\u0000${batchId.toLowerCase()}`;

/** The stored acks of many (device, batch_id) pairs in one statement, by ledgerKey. */
export async function storedAcks(tx: Queryable, table: SegmentTable, pairs: readonly { deviceId: string; batchId: string }[]): Promise<Map<string, BatchAck>> {
  const { rows } = await tx.query<{ device_id: string; batch_id: string; ack: BatchAck }>(
    `SELECT device_id::text, batch_id::text, ack FROM ${table} WHERE (device_id, batch_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))`,
    [arrayParam(pairs.map((p) => p.deviceId)), arrayParam(pairs.map((p) => p.batchId))],
  );
  return new Map(rows.map((r) => [ledgerKey(r.device_id, r.batch_id), r.ack]));
}

/** A batch's ledger row, ready to insert. */
export interface SegmentEntry {
  deviceId: string;
  batch: LedgerBatch<{ seq: number }>;
  lineageId: string;
  byteCount: number;
  ack: BatchAck;
}

/**
 * Follows or refuses the batch's journal epoch and returns the ack with the rows
 * not already held (seq <= last_seq in the same epoch); writes nothing. UUIDv7
 * text sorts by creation time, so a smaller epoch is an older journal.
 */
export function segmentAck<Row extends { seq: number }>(batch: LedgerBatch<Row>, lineage: LedgerLineage, context: Record<string, unknown>): { ack: BatchAck; fresh: Row[]; lastSeq: number } {
  if (lineage.journal_epoch !== null && batch.journal_epoch < lineage.journal_epoch) {
    throw new SynclineError('stale_epoch', `journal epoch ${batch.journal_epoch} is older than the lineage's ${lineage.journal_epoch}`, {
      ...context,
      journal_epoch: batch.journal_epoch,
      current_epoch: lineage.journal_epoch,
    });
  }
  const lastSeq = lineage.journal_epoch === batch.journal_epoch ? lineage.last_seq : 0;
  const fresh = lastSeq === 0 ? batch.rows : batch.rows.filter((row) => row.seq > lastSeq);
  const ack: BatchAck = {
    batch_id: batch.batch_id,
    status: 'accepted',
    lineage_id: lineage.id,
    last_seq: Math.max(lastSeq, batch.last_seq),
    rows_applied: fresh.length,
    rows_skipped: batch.rows.length - fresh.length,
  };
  return { ack, fresh, lastSeq };
}

/** Writes the ledger rows of many batches in one statement. */
export async function insertSegments(tx: Queryable, table: SegmentTable, entries: readonly SegmentEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await tx.query(
    `INSERT INTO ${table} (device_id, batch_id, lineage_id, journal_epoch, first_seq, last_seq, row_count, byte_count, ack)
     SELECT d, b, l, e, f, s, n, c, (a)::jsonb FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::bigint[], $7::integer[], $8::bigint[], $9::text[]) AS u(d, b, l, e, f, s, n, c, a)`,
    [
      arrayParam(entries.map((e) => e.deviceId)),
      arrayParam(entries.map((e) => e.batch.batch_id)),
      arrayParam(entries.map((e) => e.lineageId)),
      arrayParam(entries.map((e) => e.batch.journal_epoch)),
      arrayParam(entries.map((e) => String(e.batch.first_seq))),
      arrayParam(entries.map((e) => String(e.batch.last_seq))),
      arrayParam(entries.map((e) => e.batch.rows.length)),
      arrayParam(entries.map((e) => String(e.byteCount))),
      arrayParam(entries.map((e) => JSON.stringify(e.ack))),
    ],
  );
}

/** segmentAck, then the batch's ledger row written. */
export async function recordSegment<Row extends { seq: number }>(
  tx: Queryable,
  table: SegmentTable,
  deviceId: string,
  batch: LedgerBatch<Row>,
  lineage: LedgerLineage,
  byteCount: number,
  context: Record<string, unknown>,
): Promise<{ ack: BatchAck; fresh: Row[]; lastSeq: number }> {
  const result = segmentAck(batch, lineage, context);
  await insertSegments(tx, table, [{ deviceId, batch, lineageId: lineage.id, byteCount, ack: result.ack }]);
  return result;
}
