import type { DeviceDb } from './device-db.js';
import { JournalTables } from './journal-schema.js';

/**
 * Publisher progress per table: every journal entry of the table at or below its
 * acked seq is held by the cloud. A cursor belongs to the epoch it was acked in;
 * one from another epoch means nothing in this one and reads as 0.
 */

const C = JournalTables.cursors;

export function readCursors(db: DeviceDb, epoch: string): Map<string, number> {
  const rows = db.prepare(`SELECT tbl, acked_seq, journal_epoch FROM ${C}`).all() as { tbl: string; acked_seq: bigint; journal_epoch: string }[];
  return new Map(rows.map((r) => [r.tbl, r.journal_epoch === epoch ? Number(r.acked_seq) : 0]));
}

/** Creates the cursor of a newly captured table, just below its first entry; an existing cursor is kept. */
export function ensureCursor(db: DeviceDb, table: string, seq: number, epoch: string): void {
  db.prepare(`INSERT INTO ${C} (tbl, acked_seq, journal_epoch, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (tbl) DO NOTHING`).run(
    table,
    BigInt(seq),
    epoch,
    new Date().toISOString(),
  );
}

/** Moves a table's cursor forward (never back) to `seq`. */
export function advanceCursor(db: DeviceDb, table: string, seq: number, epoch: string): void {
  db.prepare(
    `INSERT INTO ${C} (tbl, acked_seq, journal_epoch, updated_at) VALUES (@table, @seq, @epoch, @now)
     ON CONFLICT (tbl) DO UPDATE SET
       acked_seq = CASE WHEN journal_epoch = @epoch THEN max(acked_seq, @seq) ELSE @seq END,
       journal_epoch = @epoch, updated_at = @now`,
  ).run({ table, seq: BigInt(seq), epoch, now: new Date().toISOString() });
}
