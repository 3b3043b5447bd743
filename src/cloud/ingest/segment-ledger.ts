import type { BatchAck } from '../../protocol/batch.js';
import { SynclineError } from '../../protocol/errors.js';
import type { Queryable } from '../store/store.js';

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

/**
 * Follows or refuses the batch's journal epoch, writes its ledger row and returns
 * the ack with the rows not already held (seq <= last_seq in the same epoch).
 * UUIDv7 text sorts by creation time, so a smaller epoch is an older journal.
 */
export async function recordSegment<Row extends { seq: number }>(
  tx: Queryable,
  table: SegmentTable,
  deviceId: string,
  batch: LedgerBatch<Row>,
  lineage: LedgerLineage,
  byteCount: number,
  context: Record<string, unknown>,
): Promise<{ ack: BatchAck; fresh: Row[]; lastSeq: number }> {
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
  await tx.query(
    `INSERT INTO ${table} (device_id, batch_id, lineage_id, journal_epoch, first_seq, last_seq, row_count, byte_count, ack)
     VALUES ($1, $2, $3, $4, $5::bigint, $6::bigint, $7, $8::bigint, $9::jsonb)`,
    [deviceId, batch.batch_id, lineage.id, batch.journal_epoch, String(batch.first_seq), String(batch.last_seq), batch.rows.length, String(byteCount), JSON.stringify(ack)],
  );
  return { ack, fresh, lastSeq };
}
