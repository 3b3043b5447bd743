import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import type { SqlValue } from '../../protocol/values.js';
import type { DeviceDb } from '../journal/device-db.js';

/**
 * The durable cursor of one telemetry table, in the file itself (a copy of the
 * file is a copy of its sync state). It moves only on the cloud's ack, in one
 * statement, so a crash at any point re-reads from the last acked row and the
 * cloud skips what it already holds by seq.
 *
 * - rowid order: `pos_rowid` is the last acked rowid and a row's seq is
 *   rowid + seq_offset; the offset grows when rowids are reused (see rewind).
 * - time order: (`pos_time`, `pos_rowid`) is the last acked row and seqs count up
 *   from `seq` (the last acked one), so a re-read numbers the same rows alike.
 */
export interface TelemetryCursor {
  table: string;
  timeColumn: string | null;
  epoch: string;
  posTime: SqlValue;
  posRowid: bigint;
  seq: number;
  seqOffset: bigint;
  /** Time order: rows at or below this rowid were checked for times behind the cursor. */
  checkedRowid: bigint;
  lateRows: number;
  gapRows: number;
}

export const TELEMETRY_STATE_TABLE = '_syncline_telemetry';

const DDL = `CREATE TABLE IF NOT EXISTS ${TELEMETRY_STATE_TABLE} (
  tbl TEXT PRIMARY KEY,
  time_column TEXT,
  epoch TEXT NOT NULL,
  pos_time,
  pos_rowid INTEGER NOT NULL DEFAULT 0,
  seq INTEGER NOT NULL DEFAULT 0,
  seq_offset INTEGER NOT NULL DEFAULT 0,
  checked_rowid INTEGER NOT NULL DEFAULT 0,
  late_rows INTEGER NOT NULL DEFAULT 0,
  gap_rows INTEGER NOT NULL DEFAULT 0,
  updated_at TEXT NOT NULL
)`;

interface CursorRow {
  tbl: string;
  time_column: string | null;
  epoch: string;
  pos_time: SqlValue;
  pos_rowid: bigint;
  seq: bigint;
  seq_offset: bigint;
  checked_rowid: bigint;
  late_rows: bigint;
  gap_rows: bigint;
}

function toCursor(r: CursorRow): TelemetryCursor {
  return {
    table: r.tbl,
    timeColumn: r.time_column,
    epoch: r.epoch,
    posTime: r.pos_time,
    posRowid: r.pos_rowid,
    seq: Number(r.seq),
    seqOffset: r.seq_offset,
    checkedRowid: r.checked_rowid,
    lateRows: Number(r.late_rows),
    gapRows: Number(r.gap_rows),
  };
}

/**
 * The table's cursor, created (with a new epoch) on first use. Changing the order
 * of a table already shipped would renumber its rows, so it is refused.
 */
export function openCursor(db: DeviceDb, table: string, timeColumn: string | null): TelemetryCursor {
  db.exec(DDL);
  db.prepare(`INSERT INTO ${TELEMETRY_STATE_TABLE} (tbl, time_column, epoch, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (tbl) DO NOTHING`).run(table, timeColumn, uuidv7(), new Date().toISOString());
  const cursor = readCursor(db, table)!;
  if (cursor.timeColumn !== timeColumn) {
    throw new SynclineError(
      'invalid_config',
      `telemetry table ${JSON.stringify(table)} is shipped in ${cursor.timeColumn === null ? 'rowid' : `${JSON.stringify(cursor.timeColumn)}`} order; it cannot switch to ${timeColumn === null ? 'rowid' : JSON.stringify(timeColumn)} order`,
      { table, field: 'telemetry' },
    );
  }
  return cursor;
}

export function readCursor(db: DeviceDb, table: string): TelemetryCursor | undefined {
  const row = db.prepare(`SELECT * FROM ${TELEMETRY_STATE_TABLE} WHERE tbl = ?`).get(table) as CursorRow | undefined;
  return row ? toCursor(row) : undefined;
}

export function listCursors(db: DeviceDb): TelemetryCursor[] {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(TELEMETRY_STATE_TABLE);
  if (!exists) return [];
  return (db.prepare(`SELECT * FROM ${TELEMETRY_STATE_TABLE} ORDER BY tbl`).all() as CursorRow[]).map(toCursor);
}

/** Moves the cursor past an acked batch (never backwards: a late ack of an older batch changes nothing). */
export function advanceTelemetryCursor(db: DeviceDb, table: string, to: { posTime: SqlValue; posRowid: bigint; seq: number; gapRows: number }): void {
  db.prepare(
    `UPDATE ${TELEMETRY_STATE_TABLE} SET pos_time = ?, pos_rowid = ?, seq = ?, gap_rows = gap_rows + ?, updated_at = ? WHERE tbl = ? AND seq < ?`,
  ).run(to.posTime, to.posRowid, BigInt(to.seq), BigInt(to.gapRows), new Date().toISOString(), table, BigInt(to.seq));
}

/**
 * Rowid order, after the app deleted the table's newest rows: SQLite hands out
 * max(rowid)+1 again, so the cursor moves down to the largest rowid left and the
 * offset grows by the same amount, keeping seqs increasing for the cloud.
 */
export function rewindCursor(db: DeviceDb, table: string, to: bigint): void {
  db.prepare(`UPDATE ${TELEMETRY_STATE_TABLE} SET seq_offset = seq_offset + (pos_rowid - ?), pos_rowid = ?, updated_at = ? WHERE tbl = ? AND pos_rowid > ?`).run(
    to,
    to,
    new Date().toISOString(),
    table,
    to,
  );
}

/** Time order: rows up to `rowid` were checked; `late` of them carry a time behind the cursor and will never be shipped. */
export function recordTimeCheck(db: DeviceDb, table: string, rowid: bigint, late: number): void {
  db.prepare(`UPDATE ${TELEMETRY_STATE_TABLE} SET checked_rowid = max(checked_rowid, ?), late_rows = late_rows + ?, updated_at = ? WHERE tbl = ?`).run(rowid, BigInt(late), new Date().toISOString(), table);
}
