import type { DeviceDb } from '../journal/device-db.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { SHARED_DDL, SharedTables } from './shared-schema.js';
import { upgradeTwoWayLayout } from './twoway-upgrade.js';
import { ensureJournalTables, markRemote, maxJournalSeq } from './twoway-journal.js';

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
    const from = await maxJournalSeq(tx);
    const result = await fn(tx);
    await markRemote(tx, from);
    await tx.run(`DELETE FROM ${SharedTables.applying}`);
    return result;
  });
}

/** Tables two-way sync captures in this file; edge capture and the edge publisher (still on the synchronous connection) leave them to it. */
export function sharedTableNames(db: DeviceDb): Set<string> {
  const present = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(SharedTables.captured);
  if (!present) return new Set();
  return new Set((db.prepare(`SELECT name FROM ${SharedTables.captured}`).all() as { name: string }[]).map((r) => r.name));
}
