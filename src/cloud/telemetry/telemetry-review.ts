import { SynclineError } from '../../protocol/errors.js';
import type { Store } from '../store/store.js';
import { fromStoredJson } from '../type-mapping.js';
import { NeedPartitions, withPartitions } from './ingest-telemetry-batch.js';
import { approveMapping, lockMapping, parseApproveRequest, type TelemetryMapping } from './telemetry-mappings.js';
import type { TelemetryPartitions } from './telemetry-partitions.js';
import { prepareValues, writeValues } from './telemetry-write.js';

export interface ApproveOutcome {
  mapping: TelemetryMapping;
  /** Staged rows moved into the store by this approval. */
  replayed_rows: number;
}

interface StagedRow {
  lineage_id: string;
  device_id: string;
  seq: string;
  row: unknown[];
  received_at: Date;
}

/**
 * Approves a pending mapping and, in the same transaction, moves every row
 * staged under it into the store, per lineage in seq order. Ingest holds a
 * pending mapping FOR SHARE while it stages, so the approval sees every row
 * staged before it and every later batch sees the approval.
 */
export async function approveTelemetryMapping(store: Store, partitions: TelemetryPartitions, mappingId: string, body: unknown, actor: string): Promise<ApproveOutcome> {
  return withPartitions(store, partitions, async (tx) => {
    const mapping = await lockMapping(tx, mappingId);
    if (mapping.status !== 'pending') throw new SynclineError('conflict', 'this telemetry mapping is already approved', { mapping_id: mappingId });
    const approved = await approveMapping(tx, mapping, parseApproveRequest(body, mapping), actor, false);
    const { rows } = await tx.query<StagedRow>(
      `SELECT s.lineage_id, l.device_id, s.seq, s.row, s.received_at FROM telemetry_staged s JOIN telemetry_lineages l ON l.id = s.lineage_id
       WHERE s.mapping_id = $1 ORDER BY s.lineage_id, s.seq`,
      [mapping.id],
    );
    const byLineage = new Map<string, StagedRow[]>();
    for (const r of rows) byLineage.set(r.lineage_id, [...(byLineage.get(r.lineage_id) ?? []), r]);
    let replayed = 0;
    for (const [lineageId, staged] of byLineage) {
      const decoded = staged.map((s) => ({ seq: Number(s.seq), row: s.row.map(fromStoredJson) }));
      // Rows without a time column are stamped with when they arrived, not when they were approved.
      const values = prepareValues(approved, decoded, BigInt(staged[0]!.received_at.getTime()) * 1000n);
      if (!partitions.knows(values.days)) throw new NeedPartitions(values.days);
      await writeValues(tx, [{ deviceId: staged[0]!.device_id, values }]);
      await tx.query('UPDATE telemetry_lineages SET rows_stored = rows_stored + $2::bigint, updated_at = now() WHERE id = $1', [lineageId, String(staged.length)]);
      replayed += staged.length;
    }
    await tx.query('DELETE FROM telemetry_staged WHERE mapping_id = $1', [mapping.id]);
    return { mapping: approved, replayed_rows: replayed };
  });
}
