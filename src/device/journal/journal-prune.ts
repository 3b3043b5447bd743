import { lowestHonouredCheckpoint } from '../change-stream/checkpoint-retention.js';
import type { SqliteQueryable } from '../driver/sqlite-driver.js';
import { JournalTables } from './journal-schema.js';
import { maxJournalSeq } from './journal-state.js';

/**
 * Deletes journal entries the cloud has acknowledged. Two entries always stay:
 * - the newest entry of the whole journal, because seq is the rowid and SQLite
 *   hands out max(rowid)+1; an empty journal would reuse seqs the cloud has seen;
 * - every entry above the lowest change-stream checkpoint, because a local
 *   consumer has not read it yet; but only while that checkpoint is within the
 *   retention limits (checkpoint-retention.ts), so a forgotten consumer cannot
 *   grow the journal forever.
 * Run it in the same transaction that advances the cursor.
 */
export async function pruneAcked(tx: SqliteQueryable, table: string, ackedSeq: number, now = Date.now()): Promise<number> {
  const newest = await maxJournalSeq(tx);
  const held = await lowestHonouredCheckpoint(tx, newest, now);
  const bound = Math.min(ackedSeq, newest - 1, held ?? ackedSeq);
  const result = await tx.run(`DELETE FROM ${JournalTables.journal} WHERE seq <= ? AND schema_id IN (SELECT id FROM ${JournalTables.schemas} WHERE tbl = ?)`, [BigInt(bound), table]);
  return result.changes;
}
