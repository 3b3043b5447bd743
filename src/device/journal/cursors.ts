import type { SqliteQueryable } from '../driver/sqlite-driver.js';
import { JournalTables } from './journal-schema.js';

/**
 * Publisher progress per table: every journal entry of the table at or below its
 * acked seq is held by the cloud. A cursor belongs to the epoch it was acked in;
 * one from another epoch means nothing in this one and reads as 0.
 */

const C = JournalTables.cursors;

export async function readCursors(db: SqliteQueryable, epoch: string): Promise<Map<string, number>> {
  const rows = await db.all<{ tbl: string; acked_seq: bigint; journal_epoch: string }>(`SELECT tbl, acked_seq, journal_epoch FROM ${C}`);
  return new Map(rows.map((r) => [r.tbl, r.journal_epoch === epoch ? Number(r.acked_seq) : 0]));
}

/** Creates the cursor of a newly captured table, just below its first entry; an existing cursor is kept. */
export async function ensureCursor(db: SqliteQueryable, table: string, seq: number, epoch: string): Promise<void> {
  await db.run(`INSERT INTO ${C} (tbl, acked_seq, journal_epoch, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (tbl) DO NOTHING`, [table, BigInt(seq), epoch, new Date().toISOString()]);
}

/** Moves a table's cursor forward (never back) to `seq`. */
export async function advanceCursor(db: SqliteQueryable, table: string, seq: number, epoch: string): Promise<void> {
  await db.run(
    `INSERT INTO ${C} (tbl, acked_seq, journal_epoch, updated_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (tbl) DO UPDATE SET
       acked_seq = CASE WHEN journal_epoch = excluded.journal_epoch THEN max(acked_seq, excluded.acked_seq) ELSE excluded.acked_seq END,
       journal_epoch = excluded.journal_epoch, updated_at = excluded.updated_at`,
    [table, BigInt(seq), epoch, new Date().toISOString()],
  );
}
