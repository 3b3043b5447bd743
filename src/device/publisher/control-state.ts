import type { ControlAck, ControlMessage } from '../../protocol/control.js';
import { advanceCursor, readCursors } from '../journal/cursors.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
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

export async function readPausedTables(db: SqliteQueryable): Promise<Map<string, PausedTable>> {
  const rows = await db.all<{ tbl: string; reason: string | null; control_id: string; updated_at: string }>(`SELECT tbl, reason, control_id, updated_at FROM ${F} WHERE paused = 1 ORDER BY tbl`);
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
export async function applyControl(driver: SqliteDriver, control: ControlMessage, epoch: string): Promise<AppliedControl> {
  return driver.writeTransaction(async (tx) => {
    const table = control.source_table;
    const current = await tx.get<{ control_id: string }>(`SELECT control_id FROM ${F} WHERE tbl = ?`, [table]);
    if (current && current.control_id > control.control_id) return { control_id: control.control_id, status: 'stale' };
    if (current?.control_id === control.control_id) return { control_id: control.control_id, status: 'applied' };
    const paused = control.type === 'pause_lineage' ? 1 : 0;
    await tx.run(
      `INSERT INTO ${F} (tbl, paused, reason, control_id, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (tbl) DO UPDATE SET paused = excluded.paused, reason = excluded.reason, control_id = excluded.control_id, updated_at = excluded.updated_at`,
      [table, paused, paused ? control.reason : null, control.control_id, new Date().toISOString()],
    );
    const result: AppliedControl = { control_id: control.control_id, status: 'applied' };
    if (control.type === 'resume_lineage' && control.journal_epoch === epoch) {
      const acked = (await readCursors(tx, epoch)).get(table) ?? 0;
      if (control.server_watermark > acked) {
        await advanceCursor(tx, table, control.server_watermark, epoch);
        await pruneAcked(tx, table, control.server_watermark);
        result.cursorAdvancedTo = control.server_watermark;
      }
    }
    return result;
  });
}
