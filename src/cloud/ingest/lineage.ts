import { uuidv7 } from 'uuidv7';
import type { RowBatch } from '../../protocol/batch.js';
import type { TableKey } from '../../protocol/schema.js';
import type { DeviceIdentity } from '../auth/devices.js';
import type { Queryable } from '../store/store.js';
import { arrayParam } from '../store/array-param.js';

export type LineageStatus = 'active' | 'paused';

/**
 * Why a paused lineage is paused; it decides what gets it going again:
 * - schema_review: a schema waits for an operator's review (approve resumes it);
 * - schema_rejected: the operator rejected the schema the rows were sent in;
 * - materialization_failed: the mirror refused rows; an operator resumes it once fixed.
 * An approved lineage whose backlog is still replaying is active: its new rows
 * queue behind the pending replay (see governance/replay.ts).
 */
export type PauseCause = 'schema_review' | 'schema_rejected' | 'materialization_failed';

/** The governance state of a lineage as a batch leaves it. */
export interface LineageState {
  status: LineageStatus;
  pause_cause: PauseCause | null;
  status_reason: string | null;
  schema_hash: string | null;
  mirror_table: string | null;
}

/** A lineage row as ingest works with it (counters are exact below 2^53, as seqs are). */
export interface Lineage {
  id: string;
  project_id: string;
  device_id: string;
  source_table: string;
  key: TableKey;
  status: LineageStatus;
  /** Null exactly when the lineage is active. */
  pause_cause: PauseCause | null;
  status_reason: string | null;
  schema_hash: string | null;
  journal_epoch: string | null;
  last_seq: number;
  mirror_table: string | null;
  /** Set by lockLineage only: whether rows the mirror refused are staged (a later change of their key supersedes them). */
  has_rejected_rows?: boolean;
}

interface LineageRow {
  id: string;
  project_id: string;
  device_id: string;
  source_table: string;
  key_kind: TableKey['kind'];
  key_columns: string[];
  status: LineageStatus;
  pause_cause: PauseCause | null;
  status_reason: string | null;
  schema_hash: string | null;
  journal_epoch: string | null;
  last_seq: string;
  mirror_table: string | null;
  has_rejected_rows?: boolean;
}

const COLUMNS = 'id, project_id, device_id, source_table, key_kind, key_columns, status, pause_cause, status_reason, schema_hash, journal_epoch, last_seq, mirror_table';

/**
 * Returns the lineage of (device, source table), creating it on first sight, and
 * holds its row lock until the transaction ends: concurrent ingests of one lineage
 * (two server processes, an HTTP retry racing the original) run one after the other.
 * The lock is tried first: the lineage almost always exists, and the insert would
 * be a statement per batch for nothing.
 */
export async function lockLineage(tx: Queryable, device: DeviceIdentity, batch: RowBatch): Promise<Lineage> {
  // In the same statement (no extra round trip): whether refused rows wait, an index probe (edge_staged_rows_rejected).
  const lock = () =>
    tx.query<LineageRow>(
      `SELECT ${COLUMNS}, EXISTS (SELECT 1 FROM edge_staged_rows s WHERE s.lineage_id = l.id AND s.reason = 'row_rejected') AS has_rejected_rows
       FROM edge_table_lineages l WHERE device_id = $1 AND source_table = $2 FOR UPDATE OF l`,
      [device.device_id, batch.source_table],
    );
  const lockedLineage = (row: LineageRow): Lineage => ({ ...toLineage(row), has_rejected_rows: row.has_rejected_rows === true });
  const found = (await lock()).rows[0];
  if (found) return lockedLineage(found);
  await tx.query(
    `INSERT INTO edge_table_lineages (id, project_id, device_id, source_table, key_kind, key_columns)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb)
     ON CONFLICT (device_id, source_table) DO NOTHING`,
    [uuidv7(), device.project_id, device.device_id, batch.source_table, batch.key.kind, JSON.stringify(batch.key.columns)],
  );
  return lockedLineage((await lock()).rows[0]!);
}

/** How a group names a lineage: (device, source table). */
export const lineageKey = (deviceId: string, sourceTable: string): string => `${deviceId.toLowerCase()}\u0000${sourceTable}`;

/**
 * lockLineage for many (device, batch) pairs in one statement, creating the
 * missing lineages in one more (and locking them in a third). Rows are locked in
 * (device, source table) order, bytewise like the group's lock keys, so two
 * groups never wait on each other in a cycle. By lineageKey.
 */
export async function lockLineages(tx: Queryable, wanted: readonly { device: DeviceIdentity; batch: RowBatch }[]): Promise<Map<string, Lineage>> {
  const locked = new Map<string, Lineage>();
  const lock = async (pairs: readonly { device: DeviceIdentity; batch: RowBatch }[]) => {
    const { rows } = await tx.query<LineageRow>(
      `SELECT ${COLUMNS}, EXISTS (SELECT 1 FROM edge_staged_rows s WHERE s.lineage_id = l.id AND s.reason = 'row_rejected') AS has_rejected_rows
       FROM edge_table_lineages l WHERE (device_id, source_table) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
       ORDER BY device_id, source_table COLLATE "C" FOR UPDATE OF l`,
      [arrayParam(pairs.map((p) => p.device.device_id)), arrayParam(pairs.map((p) => p.batch.source_table))],
    );
    for (const row of rows) locked.set(lineageKey(row.device_id, row.source_table), { ...toLineage(row), has_rejected_rows: row.has_rejected_rows === true });
  };
  await lock(wanted);
  const missing = [...new Map(wanted.filter((w) => !locked.has(lineageKey(w.device.device_id, w.batch.source_table))).map((w) => [lineageKey(w.device.device_id, w.batch.source_table), w])).values()];
  if (missing.length === 0) return locked;
  await tx.query(
    `INSERT INTO edge_table_lineages (id, project_id, device_id, source_table, key_kind, key_columns)
     SELECT i, p, d, t, k, (c)::jsonb FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[]) AS u(i, p, d, t, k, c)
     ON CONFLICT (device_id, source_table) DO NOTHING`,
    [
      arrayParam(missing.map(() => uuidv7())),
      arrayParam(missing.map((m) => m.device.project_id)),
      arrayParam(missing.map((m) => m.device.device_id)),
      arrayParam(missing.map((m) => m.batch.source_table)),
      arrayParam(missing.map((m) => m.batch.key.kind)),
      arrayParam(missing.map((m) => JSON.stringify(m.batch.key.columns))),
    ],
  );
  await lock(missing);
  return locked;
}

function toLineage(row: LineageRow): Lineage {
  return {
    id: row.id,
    project_id: row.project_id,
    device_id: row.device_id,
    source_table: row.source_table,
    key: { kind: row.key_kind, columns: row.key_columns },
    status: row.status,
    pause_cause: row.pause_cause,
    status_reason: row.status_reason,
    schema_hash: row.schema_hash,
    journal_epoch: row.journal_epoch,
    last_seq: Number(row.last_seq),
    mirror_table: row.mirror_table,
  };
}

/** Locks an existing lineage by id (governance and replay), or undefined when there is none. */
export async function lockLineageById(tx: Queryable, lineageId: string): Promise<Lineage | undefined> {
  const { rows } = await tx.query<LineageRow>(`SELECT ${COLUMNS} FROM edge_table_lineages WHERE id = $1 FOR UPDATE`, [lineageId]);
  return rows[0] ? toLineage(rows[0]) : undefined;
}

export interface LineageUpdate {
  journal_epoch: string;
  last_seq: number;
  rows_received: number;
  rows_applied: number;
  status: LineageStatus;
  pause_cause: PauseCause | null;
  status_reason: string | null;
  schema_hash: string | null;
  mirror_table: string | null;
}

/** Writes the lineage's new position and state; counters are increments. */
export async function updateLineage(tx: Queryable, lineageId: string, update: LineageUpdate): Promise<void> {
  await tx.query(
    `UPDATE edge_table_lineages SET
       journal_epoch = $2, last_seq = $3::bigint,
       rows_received = rows_received + $4::bigint, rows_applied = rows_applied + $5::bigint,
       status = $6, status_reason = $7, schema_hash = $8, mirror_table = $9, pause_cause = $10, updated_at = now()
     WHERE id = $1`,
    [lineageId, update.journal_epoch, String(update.last_seq), String(update.rows_received), String(update.rows_applied), update.status, update.status_reason, update.schema_hash, update.mirror_table, update.pause_cause],
  );
}

/** updateLineage for many lineages in one statement (each at most once). */
export async function updateLineages(tx: Queryable, updates: readonly (LineageUpdate & { id: string })[]): Promise<void> {
  if (updates.length === 0) return;
  await tx.query(
    `UPDATE edge_table_lineages AS l SET
       journal_epoch = u.epoch, last_seq = u.last_seq,
       rows_received = l.rows_received + u.received, rows_applied = l.rows_applied + u.applied,
       status = u.status, status_reason = u.reason, schema_hash = u.hash, mirror_table = u.mirror, pause_cause = u.cause, updated_at = now()
     FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
       AS u(id, epoch, last_seq, received, applied, status, reason, hash, mirror, cause)
     WHERE l.id = u.id`,
    [
      arrayParam(updates.map((u) => u.id)),
      arrayParam(updates.map((u) => u.journal_epoch)),
      arrayParam(updates.map((u) => String(u.last_seq))),
      arrayParam(updates.map((u) => String(u.rows_received))),
      arrayParam(updates.map((u) => String(u.rows_applied))),
      arrayParam(updates.map((u) => u.status)),
      arrayParam(updates.map((u) => u.status_reason)),
      arrayParam(updates.map((u) => u.schema_hash)),
      arrayParam(updates.map((u) => u.mirror_table)),
      arrayParam(updates.map((u) => u.pause_cause)),
    ],
  );
}

/** A governance decision's effect on a lineage (review, replay, resume); position and counters untouched. */
export interface LineageStateChange {
  status: LineageStatus;
  pause_cause: PauseCause | null;
  status_reason: string | null;
  schema_hash?: string | null;
  mirror_table?: string | null;
  key?: TableKey;
  /** Increment of rows_applied (replayed rows). */
  rows_applied?: number;
}

export async function setLineageState(tx: Queryable, lineageId: string, change: LineageStateChange): Promise<void> {
  await tx.query(
    `UPDATE edge_table_lineages SET
       status = $2, pause_cause = $3, status_reason = $4,
       schema_hash = CASE WHEN $5::boolean THEN $6 ELSE schema_hash END,
       mirror_table = CASE WHEN $7::boolean THEN $8 ELSE mirror_table END,
       key_kind = COALESCE($9, key_kind), key_columns = COALESCE($10::jsonb, key_columns),
       rows_applied = rows_applied + $11::bigint, updated_at = now()
     WHERE id = $1`,
    [
      lineageId,
      change.status,
      change.pause_cause,
      change.status_reason,
      change.schema_hash !== undefined,
      change.schema_hash ?? null,
      change.mirror_table !== undefined,
      change.mirror_table ?? null,
      change.key?.kind ?? null,
      change.key ? JSON.stringify(change.key.columns) : null,
      String(change.rows_applied ?? 0),
    ],
  );
}
