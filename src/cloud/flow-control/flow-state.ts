import type { ControlMessage } from '../../protocol/control.js';
import { SynclineError } from '../../protocol/errors.js';
import { isUuid } from '../auth/devices.js';
import type { Queryable } from '../store/store.js';
import { issueControl, type ControlTarget } from './controls.js';
import { decideFlow, type FlowAction, type FlowLimits, type FlowRecord } from './flow-decision.js';

/**
 * Reading and changing a lineage's flow row. Every change locks the lineage row
 * first and the flow row second, the order ingest and replay use, so flow
 * control never deadlocks with them.
 */

export interface LockedFlow {
  lineage: ControlTarget & { pause_cause: string | null; mirror_table: string | null };
  flow: FlowRecord;
}

interface FlowRow extends Omit<FlowRecord, 'staged_rows' | 'staged_bytes'> {
  staged_rows: string;
  staged_bytes: string;
}

const FLOW_COLUMNS = 'device_state, pause_reason, staged_rows, staged_bytes, consecutive_failures, operator_override';

export function toFlowRecord(row: FlowRow): FlowRecord {
  return { ...row, staged_rows: Number(row.staged_rows), staged_bytes: Number(row.staged_bytes) };
}

type LockedLineage = LockedFlow['lineage'];

/**
 * Locks a lineage of either kind by id. A telemetry lineage has no governance
 * pause or mirror, and its controls carry no journal epoch: the device's
 * telemetry cursor moves on acks alone, so a resume has no watermark to follow.
 */
async function lockAnyLineage(tx: Queryable, lineageId: string): Promise<LockedLineage | undefined> {
  if (!isUuid(lineageId)) return undefined;
  const rows = await tx.query<{ id: string; device_id: string; source_table: string; journal_epoch: string | null; last_seq: string; pause_cause: string | null; mirror_table: string | null }>(
    `SELECT id, device_id, source_table, journal_epoch, last_seq, pause_cause, mirror_table FROM edge_table_lineages WHERE id = $1 FOR UPDATE`,
    [lineageId],
  );
  const row =
    rows.rows[0] ??
    (
      await tx.query<{ id: string; device_id: string; source_table: string; journal_epoch: null; last_seq: string; pause_cause: null; mirror_table: null }>(
        `SELECT id, device_id, source_table, NULL AS journal_epoch, last_seq, NULL AS pause_cause, NULL AS mirror_table FROM telemetry_lineages WHERE id = $1 FOR UPDATE`,
        [lineageId],
      )
    ).rows[0];
  return row ? { ...row, last_seq: Number(row.last_seq) } : undefined;
}

/** Locks the lineage (row or telemetry) and its flow row (created when missing); not_found for an unknown lineage. */
export async function lockFlow(tx: Queryable, lineageId: string): Promise<LockedFlow> {
  const lineage = await lockAnyLineage(tx, lineageId);
  if (!lineage) throw new SynclineError('not_found', 'no such lineage', { lineage_id: lineageId.slice(0, 64) });
  await tx.query('INSERT INTO edge_lineage_flow (lineage_id) VALUES ($1) ON CONFLICT (lineage_id) DO NOTHING', [lineageId]);
  const flow = await tx.query<FlowRow>(`SELECT ${FLOW_COLUMNS} FROM edge_lineage_flow WHERE lineage_id = $1 FOR UPDATE`, [lineageId]);
  return { lineage, flow: toFlowRecord(flow.rows[0]!) };
}

/** Carries out a decided action on a locked flow; returns the control to send, if the device must be told. */
export async function applyFlowAction(tx: Queryable, locked: LockedFlow, action: FlowAction): Promise<ControlMessage | undefined> {
  const id = locked.lineage.id;
  switch (action.kind) {
    case 'none':
      return undefined;
    case 'clear_override':
      await tx.query('UPDATE edge_lineage_flow SET operator_override = false, changed_at = now() WHERE lineage_id = $1', [id]);
      return undefined;
    case 'relabel':
      await tx.query('UPDATE edge_lineage_flow SET pause_reason = $2, changed_at = now() WHERE lineage_id = $1', [id, action.reason]);
      return undefined;
    case 'pause':
      await tx.query(`UPDATE edge_lineage_flow SET device_state = 'paused', pause_reason = $2, operator_override = false, changed_at = now() WHERE lineage_id = $1`, [id, action.reason]);
      return issueControl(tx, locked.lineage, { type: 'pause_lineage', reason: action.reason });
    case 'resume':
      await tx.query(`UPDATE edge_lineage_flow SET device_state = 'sending', pause_reason = NULL, changed_at = now() WHERE lineage_id = $1`, [id]);
      return issueControl(tx, locked.lineage, { type: 'resume_lineage', reason: action.reason });
  }
}

/** Locks the lineage's flow, decides with the current counters, and acts. */
export async function settleFlow(tx: Queryable, lineageId: string, limits: FlowLimits): Promise<{ action: FlowAction; control: ControlMessage | undefined }> {
  const locked = await lockFlow(tx, lineageId);
  const action = decideFlow(locked.flow, limits);
  return { action, control: await applyFlowAction(tx, locked, action) };
}

/**
 * Flow rows that may need an action: paused, overridden, over the resume mark, or
 * with failures at the threshold; a page of them after lineage `after`.
 */
export async function flowCandidates(db: Queryable, limits: FlowLimits, limit: number, after = '00000000-0000-0000-0000-000000000000'): Promise<{ lineage_id: string; flow: FlowRecord }[]> {
  const { rows } = await db.query<FlowRow & { lineage_id: string }>(
    `SELECT lineage_id, ${FLOW_COLUMNS} FROM edge_lineage_flow
     WHERE lineage_id > $5::uuid
       AND (device_state = 'paused' OR operator_override OR staged_rows >= $1::float8 OR staged_bytes >= $2::float8 OR consecutive_failures >= $3)
     ORDER BY lineage_id LIMIT $4`,
    [limits.maxStagedRows * limits.resumeRatio, limits.maxStagedBytes * limits.resumeRatio, limits.breakerThreshold, limit, after],
  );
  return rows.map((r) => ({ lineage_id: r.lineage_id, flow: toFlowRecord(r) }));
}

/** The flow of one lineage as operators see it. */
export async function readFlow(db: Queryable, lineageId: string): Promise<FlowRecord & { changed_at: string | null }> {
  if (!isUuid(lineageId)) throw new SynclineError('not_found', 'no such lineage', { lineage_id: lineageId.slice(0, 64) });
  const exists = await db.query('SELECT 1 FROM edge_table_lineages WHERE id = $1 UNION ALL SELECT 1 FROM telemetry_lineages WHERE id = $1', [lineageId]);
  if (exists.rows.length === 0) throw new SynclineError('not_found', 'no such lineage', { lineage_id: lineageId });
  const { rows } = await db.query<FlowRow & { changed_at: Date }>(`SELECT ${FLOW_COLUMNS}, changed_at FROM edge_lineage_flow WHERE lineage_id = $1`, [lineageId]);
  const row = rows[0];
  if (!row) return { device_state: 'sending', pause_reason: null, staged_rows: 0, staged_bytes: 0, consecutive_failures: 0, operator_override: false, changed_at: null };
  return { ...toFlowRecord(row), changed_at: row.changed_at.toISOString() };
}
