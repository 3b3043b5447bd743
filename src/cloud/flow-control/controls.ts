import { uuidv7 } from 'uuidv7';
import type { ControlAck, ControlMessage, PauseReason, ResumeReason } from '../../protocol/control.js';
import { arrayParam } from '../store/array-param.js';
import type { BatchedLookup } from '../store/batched-lookup.js';
import type { Queryable } from '../store/store.js';

/**
 * Control rows (edge_lineage_controls): written in the transaction that changes
 * a lineage's flow, kept until the device acks them, and sent again while they
 * wait. A newer control for the same lineage supersedes an unacked older one, so
 * a device that was offline gets only what is true now.
 */

/** What a control needs to know about its lineage; the caller holds the lineage lock. */
export interface ControlTarget {
  id: string;
  device_id: string;
  source_table: string;
  journal_epoch: string | null;
  last_seq: number;
}

/** A control ready to publish, with the device root it goes to. */
export interface OutgoingControl {
  projectId: string;
  deviceId: string;
  message: ControlMessage;
}

export async function issueControl(
  tx: Queryable,
  lineage: ControlTarget,
  control: { type: 'pause_lineage'; reason: PauseReason } | { type: 'resume_lineage'; reason: ResumeReason },
): Promise<ControlMessage> {
  await tx.query(`UPDATE edge_lineage_controls SET state = 'superseded' WHERE lineage_id = $1 AND state = 'pending'`, [lineage.id]);
  const message = {
    ...control,
    control_id: uuidv7(),
    lineage_id: lineage.id,
    source_table: lineage.source_table,
    journal_epoch: lineage.journal_epoch,
    server_watermark: lineage.last_seq,
    issued_at: new Date().toISOString(),
  } as ControlMessage;
  await tx.query(
    `INSERT INTO edge_lineage_controls (id, lineage_id, device_id, type, reason, message) VALUES ($1, $2, $3, $4, $5, $6::jsonb)`,
    [message.control_id, lineage.id, lineage.device_id, message.type, message.reason, JSON.stringify(message)],
  );
  return message;
}

/** Every control the device has not acked, oldest first: what an HTTP ack carries and GET /v1/sync/controls returns. */
export async function pendingControls(db: Queryable, deviceId: string): Promise<ControlMessage[]> {
  return (await pendingControlsOf(db, [deviceId])).get(deviceId) ?? [];
}

/** pendingControls of many devices in one statement, by device id (devices with none are absent). */
export async function pendingControlsOf(db: Queryable, deviceIds: readonly string[]): Promise<Map<string, ControlMessage[]>> {
  const { rows } = await db.query<{ device_id: string; message: ControlMessage }>(
    `SELECT device_id::text, message FROM edge_lineage_controls WHERE device_id = ANY($1::uuid[]) AND state = 'pending' ORDER BY device_id, id`,
    [deviceIds],
  );
  const controls = new Map<string, ControlMessage[]>();
  for (const row of rows) controls.set(row.device_id, [...(controls.get(row.device_id) ?? []), row.message]);
  return controls;
}

/**
 * Records a device's ack. Only the device the control was for can ack it; an ack
 * for an unknown, foreign or already acked control changes nothing. Returns
 * whether a pending control was acked.
 */
export async function recordControlAck(db: Queryable, deviceId: string, ack: ControlAck): Promise<boolean> {
  const { rows } = await db.query<{ id: string }>(
    `UPDATE edge_lineage_controls SET state = CASE WHEN state = 'pending' THEN 'acked' ELSE state END, ack_status = $3, acked_at = now()
     WHERE id = $1 AND device_id = $2 AND acked_at IS NULL RETURNING id`,
    [ack.control_id, deviceId, ack.status],
  );
  return rows.length > 0;
}

/** Devices with a control due now (never sent, or unacked past its resend time), at most `limit`. */
export async function dueControlDevices(db: Queryable, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ device_id: string }>(
    `SELECT DISTINCT device_id::text AS device_id FROM (
       SELECT device_id FROM edge_lineage_controls WHERE state = 'pending' AND next_send_at <= now() ORDER BY next_send_at LIMIT $1
     ) AS due`,
    [limit],
  );
  return rows.map((r) => r.device_id);
}

/**
 * Claims pending controls that are due (never sent, or unacked past their resend
 * time) and schedules the next resend with a growing interval, so a device that is
 * offline for days is not sent the same control every few seconds. SKIP LOCKED
 * lets several server processes share the work without sending twice; with
 * `deviceIds` only those devices' controls are claimed (the ones a broker holds).
 */
export async function claimDueControls(db: Queryable, options: { limit: number; resendMs: number; maxResendMs: number; deviceIds?: readonly string[] }): Promise<OutgoingControl[]> {
  const { rows } = await db.query<{ project_id: string; device_id: string; message: ControlMessage }>(
    `WITH due AS (
       SELECT id FROM edge_lineage_controls WHERE state = 'pending' AND next_send_at <= now()
         AND ($4::uuid[] IS NULL OR device_id = ANY($4::uuid[]))
       ORDER BY next_send_at LIMIT $1 FOR UPDATE SKIP LOCKED
     )
     UPDATE edge_lineage_controls AS c
        SET send_count = c.send_count + 1,
            next_send_at = now() + least($3::float8, $2::float8 * power(2, least(c.send_count, 16))) * interval '1 millisecond'
       FROM due, devices AS d
      WHERE c.id = due.id AND d.id = c.device_id
     RETURNING d.project_id, c.device_id::text AS device_id, c.message`,
    [options.limit, options.resendMs, options.maxResendMs, options.deviceIds ? arrayParam(options.deviceIds) : null],
  );
  return rows.map((r) => ({ projectId: r.project_id, deviceId: r.device_id, message: r.message })).sort((a, b) => (a.message.control_id < b.message.control_id ? -1 : 1));
}

export interface ControlRecord {
  control_id: string;
  type: string;
  reason: string;
  state: string;
  ack_status: string | null;
  send_count: number;
  created_at: string;
  acked_at: string | null;
}

/** The lineage's most recent controls, newest first, for operators. */
export async function recentControls(db: Queryable, lineageId: string, limit = 20): Promise<ControlRecord[]> {
  const { rows } = await db.query<Omit<ControlRecord, 'created_at' | 'acked_at'> & { created_at: Date; acked_at: Date | null }>(
    `SELECT id::text AS control_id, type, reason, state, ack_status, send_count, created_at, acked_at
     FROM edge_lineage_controls WHERE lineage_id = $1 ORDER BY id DESC LIMIT $2`,
    [lineageId, limit],
  );
  return rows.map((r) => ({ ...r, created_at: r.created_at.toISOString(), acked_at: r.acked_at ? r.acked_at.toISOString() : null }));
}

/** An HTTP ack with the device's pending controls attached (left off when there are none); with `lookup`, acks answered together share one statement. */
export async function withPendingControls<T extends object>(db: Queryable, deviceId: string, ack: T, lookup?: BatchedLookup<ControlMessage[]>): Promise<T & { controls?: ControlMessage[] }> {
  const controls = lookup ? ((await lookup.get(deviceId)) ?? []) : await pendingControls(db, deviceId);
  return controls.length > 0 ? { ...ack, controls } : ack;
}
