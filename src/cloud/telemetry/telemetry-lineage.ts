import { uuidv7 } from 'uuidv7';
import type { DeviceIdentity } from '../auth/devices.js';
import type { Queryable } from '../store/store.js';

export interface TelemetryLineage {
  id: string;
  journal_epoch: string | null;
  last_seq: number;
}

/** The lineage of (device, telemetry table), created on first sight and row-locked until the transaction ends (one batch of it at a time); locked first, as lockLineage does. */
export async function lockTelemetryLineage(tx: Queryable, device: DeviceIdentity, table: string): Promise<TelemetryLineage> {
  const lock = () =>
    tx.query<{ id: string; journal_epoch: string | null; last_seq: string }>('SELECT id, journal_epoch, last_seq FROM telemetry_lineages WHERE device_id = $1 AND source_table = $2 FOR UPDATE', [device.device_id, table]);
  let row = (await lock()).rows[0];
  if (!row) {
    await tx.query(
      `INSERT INTO telemetry_lineages (id, project_id, device_id, source_table) VALUES ($1, $2, $3, $4) ON CONFLICT (device_id, source_table) DO NOTHING`,
      [uuidv7(), device.project_id, device.device_id, table],
    );
    row = (await lock()).rows[0]!;
  }
  return { id: row.id, journal_epoch: row.journal_epoch, last_seq: Number(row.last_seq) };
}

export async function advanceTelemetryLineage(tx: Queryable, id: string, update: { epoch: string; lastSeq: number; received: number; stored: number; schemaHash: string }): Promise<void> {
  await tx.query(
    `UPDATE telemetry_lineages SET journal_epoch = $2, last_seq = $3::bigint, rows_received = rows_received + $4::bigint, rows_stored = rows_stored + $5::bigint, schema_hash = $6, updated_at = now() WHERE id = $1`,
    [id, update.epoch, String(update.lastSeq), String(update.received), String(update.stored), update.schemaHash],
  );
}
