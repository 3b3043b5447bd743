import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import type { TelemetryBatch } from '../../protocol/telemetry-batch.js';
import type { DeviceIdentity } from '../auth/devices.js';
import { lineageKey } from '../ingest/lineage.js';
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

/**
 * A pipelined batch (after_seq set) is taken only once the lineage holds its
 * predecessor: the ledger skips rows at or below last_seq, so storing a batch
 * before the one ahead of it would make that one's rows look already held. The
 * device sends it again once the predecessor is acknowledged.
 */
export function checkFollows(batch: Pick<TelemetryBatch, 'after_seq' | 'journal_epoch'>, lineage: TelemetryLineage, context: Record<string, unknown>): void {
  if (batch.after_seq === undefined) return;
  const held = heldIn(lineage, batch.journal_epoch);
  if (batch.after_seq > held) {
    throw new SynclineError('telemetry_too_early', `the batch follows seq ${batch.after_seq}, the cloud holds up to ${held}: send it again once the batch before it is acknowledged`, { ...context, after_seq: batch.after_seq, last_seq: held });
  }
}

/** The lineage's last seq as a batch of `epoch` sees it: nothing of another epoch counts. */
function heldIn(lineage: Pick<TelemetryLineage, 'journal_epoch' | 'last_seq'>, epoch: string): number {
  return lineage.journal_epoch === epoch ? lineage.last_seq : 0;
}

/** What checkFollows would compare a batch of `epoch` with, read without a lock (0 for a lineage not seen yet). */
export async function storedTelemetrySeq(db: Queryable, deviceId: string, table: string, epoch: string): Promise<number> {
  const { rows } = await db.query<{ journal_epoch: string | null; last_seq: string }>('SELECT journal_epoch, last_seq FROM telemetry_lineages WHERE device_id = $1 AND source_table = $2', [deviceId, table]);
  const row = rows[0];
  return row ? heldIn({ journal_epoch: row.journal_epoch, last_seq: Number(row.last_seq) }, epoch) : 0;
}

/**
 * lockTelemetryLineage for many (device, table) pairs in one statement, the
 * missing ones created in one more and locked in a third. Rows are locked in
 * (device, table) order, bytewise like the group's lock keys, so two groups never
 * wait on each other in a cycle. By lineageKey.
 */
export async function lockTelemetryLineages(tx: Queryable, wanted: readonly { device: DeviceIdentity; table: string }[]): Promise<Map<string, TelemetryLineage>> {
  const locked = new Map<string, TelemetryLineage>();
  const lock = async (pairs: readonly { device: DeviceIdentity; table: string }[]) => {
    const { rows } = await tx.query<{ id: string; device_id: string; source_table: string; journal_epoch: string | null; last_seq: string }>(
      `SELECT id, device_id::text, source_table, journal_epoch, last_seq FROM telemetry_lineages
       WHERE (device_id, source_table) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
       ORDER BY device_id, source_table COLLATE "C" FOR UPDATE`,
      [pairs.map((p) => p.device.device_id), pairs.map((p) => p.table)],
    );
    for (const r of rows) locked.set(lineageKey(r.device_id, r.source_table), { id: r.id, journal_epoch: r.journal_epoch, last_seq: Number(r.last_seq) });
  };
  await lock(wanted);
  const missing = [...new Map(wanted.filter((w) => !locked.has(lineageKey(w.device.device_id, w.table))).map((w) => [lineageKey(w.device.device_id, w.table), w])).values()];
  if (missing.length === 0) return locked;
  await tx.query(
    `INSERT INTO telemetry_lineages (id, project_id, device_id, source_table)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[]) ON CONFLICT (device_id, source_table) DO NOTHING`,
    [missing.map(() => uuidv7()), missing.map((m) => m.device.project_id), missing.map((m) => m.device.device_id), missing.map((m) => m.table)],
  );
  await lock(missing);
  return locked;
}

/** advanceTelemetryLineage for many lineages in one statement. */
export async function advanceTelemetryLineages(tx: Queryable, updates: readonly ({ id: string } & Parameters<typeof advanceTelemetryLineage>[2])[]): Promise<void> {
  if (updates.length === 0) return;
  await tx.query(
    `UPDATE telemetry_lineages l SET journal_epoch = u.e, last_seq = u.s, rows_received = l.rows_received + u.r, rows_stored = l.rows_stored + u.st, schema_hash = u.h, updated_at = now()
     FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[]) AS u(i, e, s, r, st, h) WHERE l.id = u.i`,
    [updates.map((u) => u.id), updates.map((u) => u.epoch), updates.map((u) => String(u.lastSeq)), updates.map((u) => String(u.received)), updates.map((u) => String(u.stored)), updates.map((u) => u.schemaHash)],
  );
}
