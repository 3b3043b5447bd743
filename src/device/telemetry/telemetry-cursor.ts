import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import type { SqlValue } from '../../protocol/values.js';
import type { SqliteQueryable } from '../driver/sqlite-driver.js';

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

type CursorRow = {
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
};

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
export async function openCursor(db: SqliteQueryable, table: string, timeColumn: string | null): Promise<TelemetryCursor> {
  await db.exec(DDL);
  await db.run(`INSERT INTO ${TELEMETRY_STATE_TABLE} (tbl, time_column, epoch, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (tbl) DO NOTHING`, [table, timeColumn, uuidv7(), new Date().toISOString()]);
  const cursor = (await readCursor(db, table))!;
  if (cursor.timeColumn !== timeColumn) {
    throw new SynclineError(
      'invalid_config',
      `telemetry table ${JSON.stringify(table)} is shipped in ${cursor.timeColumn === null ? 'rowid' : `${JSON.stringify(cursor.timeColumn)}`} order; it cannot switch to ${timeColumn === null ? 'rowid' : JSON.stringify(timeColumn)} order`,
      { table, field: 'telemetry' },
    );
  }
  return cursor;
}

export async function readCursor(db: SqliteQueryable, table: string): Promise<TelemetryCursor | undefined> {
  const row = await db.get<CursorRow>(`SELECT * FROM ${TELEMETRY_STATE_TABLE} WHERE tbl = ?`, [table]);
  return row ? toCursor(row) : undefined;
}

export async function listCursors(db: SqliteQueryable): Promise<TelemetryCursor[]> {
  const exists = await db.get("SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = ?", [TELEMETRY_STATE_TABLE]);
  if (!exists) return [];
  return (await db.all<CursorRow>(`SELECT * FROM ${TELEMETRY_STATE_TABLE} ORDER BY tbl`)).map(toCursor);
}

/** Moves the cursor past an acked batch (never backwards: a late ack of an older batch changes nothing). */
export async function advanceTelemetryCursor(db: SqliteQueryable, table: string, to: { posTime: SqlValue; posRowid: bigint; seq: number; gapRows: number }): Promise<void> {
  await db.run(`UPDATE ${TELEMETRY_STATE_TABLE} SET pos_time = ?, pos_rowid = ?, seq = ?, gap_rows = gap_rows + ?, updated_at = ? WHERE tbl = ? AND seq < ?`, [
    to.posTime,
    to.posRowid,
    BigInt(to.seq),
    BigInt(to.gapRows),
    new Date().toISOString(),
    table,
    BigInt(to.seq),
  ]);
}

/**
 * Rowid order, after the app deleted the table's newest rows: SQLite hands out
 * max(rowid)+1 again, so the cursor moves down to the largest rowid left and the
 * offset grows by the same amount, keeping seqs increasing for the cloud.
 */
export async function rewindCursor(db: SqliteQueryable, table: string, to: bigint): Promise<void> {
  await db.run(`UPDATE ${TELEMETRY_STATE_TABLE} SET seq_offset = seq_offset + (pos_rowid - ?), pos_rowid = ?, updated_at = ? WHERE tbl = ? AND pos_rowid > ?`, [to, to, new Date().toISOString(), table, to]);
}

/** Time order: rows up to `rowid` were checked; `late` of them carry a time behind the cursor and will never be shipped. */
export async function recordTimeCheck(db: SqliteQueryable, table: string, rowid: bigint, late: number): Promise<void> {
  await db.run(`UPDATE ${TELEMETRY_STATE_TABLE} SET checked_rowid = max(checked_rowid, ?), late_rows = late_rows + ?, updated_at = ? WHERE tbl = ?`, [rowid, BigInt(late), new Date().toISOString(), table]);
}
