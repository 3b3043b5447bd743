import type { ControlAck, ControlMessage } from '../../protocol/control.js';
import { advanceCursor, readCursors } from '../journal/cursors.js';
import { immediate, type DeviceDb } from '../journal/device-db.js';
import { pruneAcked } from '../journal/journal-prune.js';
import { JournalTables } from '../journal/journal-schema.js';

/**
 * The device's flow-control state, in the SQLite file itself (`_syncline_flow`),
 * so a pause survives an agent restart: a paused table stays unsent, its changes
 * buffered in the journal, until the cloud's resume.
 */

export interface PausedTable {
  table: string;
  reason: string;
  control_id: string;
  since: string;
}

const F = JournalTables.flow;

export function readPausedTables(db: DeviceDb): Map<string, PausedTable> {
  const rows = db.prepare(`SELECT tbl, reason, control_id, updated_at FROM ${F} WHERE paused = 1 ORDER BY tbl`).all() as { tbl: string; reason: string | null; control_id: string; updated_at: string }[];
  return new Map(rows.map((r) => [r.tbl, { table: r.tbl, reason: r.reason ?? 'paused', control_id: r.control_id, since: r.updated_at }]));
}

export interface AppliedControl extends ControlAck {
  /** Resume only: the table's cursor moved up to the cloud's watermark (acks the device never got). */
  cursorAdvancedTo?: number;
}

/**
 * Applies one control in one transaction. A control older than the newest one
 * applied for its table is `stale` and changes nothing; the same control again
 * (a redelivery) is `applied` and changes nothing either. A resume whose
 * watermark is above the table's cursor, in the current epoch, moves the cursor
 * there and prunes: the cloud holds those rows, so the device sends from
 * watermark + 1.
 */
export function applyControl(db: DeviceDb, control: ControlMessage, epoch: string): AppliedControl {
  return immediate(db, () => {
    const table = control.source_table;
    const current = db.prepare(`SELECT control_id FROM ${F} WHERE tbl = ?`).get(table) as { control_id: string } | undefined;
    if (current && current.control_id > control.control_id) return { control_id: control.control_id, status: 'stale' };
    if (current?.control_id === control.control_id) return { control_id: control.control_id, status: 'applied' };
    const paused = control.type === 'pause_lineage' ? 1 : 0;
    db.prepare(
      `INSERT INTO ${F} (tbl, paused, reason, control_id, updated_at) VALUES (@table, @paused, @reason, @id, @now)
       ON CONFLICT (tbl) DO UPDATE SET paused = @paused, reason = @reason, control_id = @id, updated_at = @now`,
    ).run({ table, paused, reason: paused ? control.reason : null, id: control.control_id, now: new Date().toISOString() });
    const result: AppliedControl = { control_id: control.control_id, status: 'applied' };
    if (control.type === 'resume_lineage' && control.journal_epoch === epoch) {
      const acked = readCursors(db, epoch).get(table) ?? 0;
      if (control.server_watermark > acked) {
        advanceCursor(db, table, control.server_watermark, epoch);
        pruneAcked(db, table, control.server_watermark);
        result.cursorAdvancedTo = control.server_watermark;
      }
    }
    return result;
  });
}
