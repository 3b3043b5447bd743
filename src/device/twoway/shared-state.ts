import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { SHARED_DDL, SharedTables } from './shared-schema.js';
import { upgradeTwoWayLayout } from './twoway-upgrade.js';
import { ensureJournalTables, markRemote, newestSeq } from './twoway-journal.js';

/**
 * Creates the journal and the two-way sync tables in the file (idempotent), in one
 * transaction that also converts a file of an earlier layout in place.
 */
export function ensureSharedSchema(driver: SqliteDriver): Promise<void> {
  return driver.writeTransaction(async (tx) => {
    await ensureJournalTables(tx);
    await tx.exec(SHARED_DDL);
    await upgradeTwoWayLayout(tx);
  });
}

/**
 * Runs `fn` as a remote apply: in one IMMEDIATE transaction holding the applying
 * marker (which the guards of down-only tables check), and with every journal
 * entry it caused marked remote before the commit, so local consumers see the
 * changes and no push ever sends them back. Deferred foreign keys let a bundle
 * land in any order, as on the server.
 */
export function withRemoteApply<T>(driver: SqliteDriver, fn: (tx: SqliteQueryable) => Promise<T>): Promise<T> {
  return driver.writeTransaction(async (tx) => {
    await tx.exec('PRAGMA defer_foreign_keys = ON');
    await tx.run(`INSERT INTO ${SharedTables.applying} (applying) VALUES (1)`);
    const from = await newestSeq(tx);
    const result = await fn(tx);
    await markRemote(tx, from);
    await tx.run(`DELETE FROM ${SharedTables.applying}`);
    return result;
  });
}

/** Tables two-way sync captures in this file; edge capture and the edge publisher leave them to it. */
export async function sharedTableNames(db: SqliteQueryable): Promise<Set<string>> {
  const present = await db.get(`SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = ?`, [SharedTables.captured]);
  if (!present) return new Set();
  return new Set((await db.all<{ name: string }>(`SELECT name FROM ${SharedTables.captured}`)).map((r) => r.name));
}
