import type { Logger } from 'pino';
import type { BatchAck, RowBatch } from '../../protocol/batch.js';
import { SynclineError } from '../../protocol/errors.js';
import type { DeviceIdentity } from '../auth/devices.js';
import { validateSourceName } from '../identifiers.js';
import { transactionWithRetry, type Queryable, type Store } from '../store/store.js';
import { applyRows, type ApplyOptions } from './apply-rows.js';
import type { GroupCommitter } from './group-commit.js';
import { lineageKey, lockLineage, updateLineage } from './lineage.js';
import { MAX_MIRRORED_COLUMNS } from './mirror-schema.js';
import { rowBatchRunner, type RowBatchJob } from './row-batch-group.js';
import { recordSegment, storedAck } from './segment-ledger.js';

export interface IngestOptions extends ApplyOptions {
  logger?: Logger;
  /** Commits the batch together with other devices' batches; alone in its own transaction when absent. */
  group?: GroupCommitter;
}

/** Refuses names that could not be used safely before anything is stored. */
function checkNames(device: DeviceIdentity, batch: RowBatch): void {
  const context = { device_id: device.device_id, batch_id: batch.batch_id };
  validateSourceName(batch.source_table, 'table', context);
  for (const column of batch.schema.columns) validateSourceName(column.name, 'column', { ...context, table: batch.source_table });
  if (batch.schema.columns.length > MAX_MIRRORED_COLUMNS) {
    throw new SynclineError('invalid_batch', `a mirrored table has at most ${MAX_MIRRORED_COLUMNS} columns`, { ...context, table: batch.source_table, field: 'schema.columns' });
  }
}

/**
 * Takes one validated batch from an authenticated device, in one transaction:
 * dedupe by (device, batch_id), lock the lineage, follow or refuse its journal
 * epoch, skip rows already held (seq <= last_seq), write the ledger row, then
 * materialize or stage the rest and advance the lineage. The ack is returned only
 * after commit, and is stored so a redelivery gets the same answer. With a
 * `group` committer the batch shares its transaction with other devices' batches
 * (see group-commit.ts), and a group's batches run together in set-based
 * statements (row-batch-group.ts); the answer is the same.
 *
 * `rows_applied` in the ack counts journal rows taken by this batch (materialized
 * or staged: either way durably held); `rows_skipped` those already held.
 */
export async function ingestRowBatch(store: Store, device: DeviceIdentity, batch: RowBatch, byteCount: number, options: IngestOptions = {}): Promise<BatchAck> {
  checkNames(device, batch);
  const inTransaction = (tx: Queryable) => ingestInTransaction(tx, device, batch, byteCount, options);
  const alone = () => transactionWithRetry(store, inTransaction);
  const job: RowBatchJob = { lockKey: `rows\u0000${lineageKey(device.device_id, batch.source_table)}`, rows: batch.rows.length, inGroup: inTransaction, alone, together: rowBatchRunner, device, batch, byteCount, options };
  const ack = options.group ? await options.group.submit(job) : await alone();
  options.logger?.debug({ device_id: device.device_id, table: batch.source_table, ...ack }, 'row batch ingested');
  return ack;
}

async function ingestInTransaction(tx: Queryable, device: DeviceIdentity, batch: RowBatch, byteCount: number, options: IngestOptions): Promise<BatchAck> {
  const previous = await storedAck(tx, 'edge_export_segments', device.device_id, batch.batch_id);
  if (previous) return { ...previous, status: 'duplicate' as const };

  const lineage = await lockLineage(tx, device, batch);
  const context = { device_id: device.device_id, batch_id: batch.batch_id, lineage_id: lineage.id, table: batch.source_table };
  const { ack: result, fresh } = await recordSegment(tx, 'edge_export_segments', device.device_id, batch, lineage, byteCount, context);
  if (fresh.length === 0) return result;

  const meta = { deviceId: device.device_id, epoch: batch.journal_epoch, batchId: batch.batch_id };
  const outcome = await applyRows(tx, lineage, batch, fresh, meta, options);
  await updateLineage(tx, lineage.id, {
    ...outcome.state,
    journal_epoch: batch.journal_epoch,
    last_seq: result.last_seq,
    rows_received: fresh.length,
    rows_applied: outcome.materialized,
  });
  return result;
}
